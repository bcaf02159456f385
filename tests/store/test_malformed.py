"""A malformed-input corpus the tests write: each case is a clear IngestError (file, sample or
line, fix) that leaves the catalog byte-for-byte as it was, or a per-sample flag."""

from __future__ import annotations

import json

import pytest

import store.ingest.readers as readers
from store.errors import IngestError
from store.ingest import LONG_TEXT_CHARS, ingest
from tests.store.ingest_helpers import llava_row, png, samples, snapshot, write_json, write_jsonl


@pytest.fixture
def data(tmp_path):
    png(tmp_path / "d" / "img" / "a.png")
    return tmp_path / "d"


def _good_text() -> str:
    return json.dumps([llava_row(i) for i in range(6)], indent=1)


# name -> (file name, bytes, kwargs, regex the message must match)
FATAL = {
    "truncated array": (
        "t.json",
        _good_text()[:-40].encode(),
        {},
        r"sample 5, line \d+: the file ends in the middle",
    ),
    "truncated after a sample": (
        "t.json",
        _good_text().rsplit("]", 1)[0].encode(),
        {},
        r"ends inside the JSON array",
    ),
    "missing comma": (
        "t.json",
        b'[{"id": "a", "conversations": []}\n {"id": "b", "conversations": []}]',
        {},
        r"line 2, after sample 0: expected ',' or '\]'",
    ),
    "garbage after the array": (
        "t.json",
        b'[{"id": "a", "conversations": []}]\nnope',
        {},
        r"line 2: unexpected 'n'",
    ),
    "top level object": (
        "t.json",
        json.dumps({"data": [llava_row(0)]}, indent=2).encode(),
        {},
        r"line 1: this is a pretty-printed JSON document, not JSON Lines",
    ),
    "top level string": ("t.json", b'"hello"', {}, r"expected a JSON list of samples"),
    "empty file": ("t.json", b"  \n", {}, r"found an empty file"),
    "empty array": ("t.json", b"[]", {}, r"holds no samples"),
    "sample is a number": (
        "t.json",
        b'[\n{"id": "a", "conversations": []},\n 42\n]',
        {},
        r"sample 1 \(line 3\).*JSON int",
    ),
    "conversations is a string": (
        "t.json",
        json.dumps([llava_row(0), {"id": "x", "conversations": "hi"}]).encode(),
        {},
        r"sample 1 \(line 1\): 'conversations' is str; expected a list of turns",
    ),
    "unknown role": (
        "t.json",
        json.dumps([{"id": "x", "conversations": [{"from": "robot", "value": "hi"}]}]).encode(),
        {},
        r"sample 0 .*role 'robot'.*expected one of 'human'",
    ),
    "image is a number": (
        "t.json",
        json.dumps([llava_row(0, image=7)]).encode(),
        {},
        r"image field is int",
    ),
    "content is a number": (  # lists of typed parts are read now (tests/store/test_ingest_hub.py)
        "t.jsonl",
        json.dumps({"messages": [{"role": "user", "content": 5}]}).encode(),
        {"fmt": "swift"},
        r"turn 0 content is int",
    ),
    "required field missing in every row": (
        "t.json",
        json.dumps([{"id": "a", "text": "x"}, {"id": "b", "text": "y"}]).encode(),
        {"fmt": "llava"},
        r"none of the 2 samples has the field\(s\) conversations",
    ),
    "unknown format from content": (
        "t.json",
        json.dumps([{"id": "a", "text": "x"}]).encode(),
        {},
        r"cannot tell the format",
    ),
    "non-UTF-8 in a JSON array": (
        "t.json",
        b'[{"id": "a",\n "conversations": [{"from": "human", "value": "caf'
        + b"\xe9\xff"
        + b'"}]}]',
        {},
        r"line 2 \(byte \d+\): bytes that are not UTF-8.*iconv",
    ),
    "non-UTF-8 in JSON Lines": (
        "t.jsonl",
        json.dumps(llava_row(0)).encode() + b"\n" + b'{"id": "\xff"}\n',
        {"fmt": "llava"},
        r"line 2 \(byte \d+\): bytes that are not UTF-8",
    ),
    "truncated JSON Lines": (
        "t.jsonl",
        (json.dumps(llava_row(0)) + "\n" + json.dumps(llava_row(1))[:-5]).encode(),
        {"fmt": "llava"},
        r"sample 1, line 2: the last line is cut off",
    ),
    "broken line in JSON Lines": (
        "t.jsonl",
        (json.dumps(llava_row(0)) + '\n{"id": oops}\n' + json.dumps(llava_row(2)) + "\n").encode(),
        {"fmt": "llava"},
        r"sample 1, line 2: invalid JSON",
    ),
    "not parquet": (
        "t.parquet",
        b"PAR1 garbage",
        {"mapping": {"question": "q", "answer": "a"}},
        r"not a readable Parquet file",
    ),
    "unknown check mode": (
        "t.json",
        _good_text().encode(),
        {"check_images": "pixels"},
        r"unknown image check 'pixels'",
    ),
}


@pytest.mark.parametrize("case", sorted(FATAL))
def test_fatal_input_leaves_the_catalog_exactly_as_it_was(catalog, data, case):
    ingest(catalog, write_json(data / "good.json", [llava_row(i) for i in range(3)]), name="t")
    before = snapshot(catalog)
    name, payload, kwargs, pattern = FATAL[case]
    path = data / name
    path.write_bytes(payload)
    with pytest.raises(IngestError, match=pattern) as err:
        ingest(catalog, path, name="t", **kwargs)
    message = str(err.value)
    assert "\n" not in message and (str(path) in message or "unknown image check" in message)
    after = snapshot(catalog)
    assert after[1:] == before[1:]  # rows
    assert after[0] == before[0]  # bytes


def test_truncation_inside_a_huge_string_across_many_chunks(catalog, data, monkeypatch):
    monkeypatch.setattr(readers, "CHUNK", 64)
    text = json.dumps([llava_row(0), llava_row(1, answer="z" * 5000)])
    path = data / "t.json"
    path.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(IngestError, match=r"sample 1, line 1: the file ends in the middle"):
        ingest(catalog, path)


def test_per_sample_problems_are_flags_not_errors(catalog, data, tmp_path):
    (data / "img" / "zero.png").write_bytes(b"")
    (data / "img" / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n but then garbage")
    # A real (corrupt) file outside the root: reading it would add corrupt_image.
    (tmp_path / "outside.png").write_bytes(b"")
    rows = [
        llava_row(0),
        llava_row(1, "img/zero.png"),
        llava_row(2, "img/junk.png"),
        llava_row(3, "img/missing.png"),
        llava_row(4, "../../etc/passwd"),
        llava_row(5, "../outside.png"),
        llava_row(0),  # duplicate id
        llava_row(0),  # and again
        llava_row(8, answer="   "),
        llava_row(9, answer="w" * (LONG_TEXT_CHARS + 1)),
        llava_row(10, ["img/a.png", "img/a.png"])
        | {"conversations": llava_row(10)["conversations"]},
        {"id": "no-conv", "image": "img/a.png"},  # conversations missing in this row only
        llava_row(12, None),  # text-only is valid
        {"id": None, "conversations": llava_row(13, None)["conversations"]},
    ]
    report = ingest(catalog, write_json(data / "mixed.json", rows))
    got = {s["position"]: s for s in samples(catalog, "mixed")}
    flags = {p: s["flags"] for p, s in got.items()}
    assert flags == {
        0: [],
        1: ["corrupt_image"],
        2: ["corrupt_image"],
        3: ["missing_image"],
        4: ["path_escape"],
        5: ["path_escape"],
        6: ["duplicate_id"],
        7: ["duplicate_id"],
        8: ["empty_answer"],
        9: ["long_text"],
        10: ["image_token_mismatch"],
        11: ["image_token_mismatch", "empty_answer"],
        12: [],
        13: [],
    }
    assert [got[p]["orig_id"] for p in (0, 6, 7, 13)] == ["s0", "s0#2", "s0#3", "#13"]
    assert report.n_flagged == 11 and report.flags["duplicate_id"] == 2
    assert report.flags["path_escape"] == 2 and report.n_samples == 14
    # The escaping path is kept (resolved lexically) so the user can see what was asked for.
    assert got[4]["images_raw"] == ["../../etc/passwd"]
    assert len(got[9]["answer"]) == LONG_TEXT_CHARS + 1  # flagged, not truncated


def test_a_duplicate_suffix_never_collides_with_a_real_id(catalog, data):
    rows = [llava_row(0), {**llava_row(0), "id": "s0#2"}, llava_row(0)]
    ingest(catalog, write_json(data / "dup.json", rows))
    assert [s["orig_id"] for s in samples(catalog, "dup")] == ["s0", "s0#2", "s0#3"]


def test_sharegpt_info_problems(catalog, data):
    write_json(data / "dataset_info.json", {"a": {"file_name": "a.json"}})
    with pytest.raises(IngestError, match=r"has no dataset 'b'; it has a"):
        ingest(catalog, data / "dataset_info.json", dataset_key="b")
    with pytest.raises(IngestError, match=r"a.json: no such file \(named by"):
        ingest(catalog, data / "dataset_info.json")
    write_json(data / "dataset_info.json", {"h": {"hf_hub_url": "org/name"}})
    with pytest.raises(IngestError, match="no local file_name"):
        ingest(catalog, data / "dataset_info.json")
    write_json(data / "dataset_info.json", {"al": {"file_name": "a.json", "formatting": "alpaca"}})
    with pytest.raises(IngestError, match="formatting 'alpaca'"):
        ingest(catalog, data / "dataset_info.json")
    (data / "dataset_info.json").write_text("{broken")
    with pytest.raises(IngestError, match="cannot read dataset_info.json"):
        ingest(catalog, data / "dataset_info.json")


def test_path_problems(catalog, data):
    with pytest.raises(IngestError, match="no such file"):
        ingest(catalog, data / "nope.json")
    with pytest.raises(IngestError, match="is a folder"):
        ingest(catalog, data / "img")
    path = write_jsonl(data / "ok.jsonl", [llava_row(0)])
    with pytest.raises(IngestError, match="image root .* is not a folder"):
        ingest(catalog, path, image_root=data / "no-such-dir")
    with pytest.raises(IngestError, match="unknown format 'yaml'"):
        ingest(catalog, path, fmt="yaml")


def test_a_failure_inside_the_write_rolls_everything_back(catalog, data, monkeypatch):
    import store.ingest.merge as merge

    path = write_json(data / "t.json", [llava_row(i) for i in range(3)])
    ingest(catalog, path)
    before = snapshot(catalog)
    write_json(path, [llava_row(i, answer="changed") for i in range(5)])

    class Boom:
        @staticmethod
        def dumps(obj):  # called after the samples were deleted and re-inserted
            raise OSError("disk full")

        loads = staticmethod(json.loads)

    monkeypatch.setattr(merge, "json", Boom)
    with pytest.raises(OSError, match="disk full"):
        ingest(catalog, path)
    assert snapshot(catalog)[1:] == before[1:]
