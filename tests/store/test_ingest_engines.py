"""The DuckDB fast path and the Python reader give byte-identical samples, and the fast path
hands anything unusual to the Python reader instead of deciding it."""

from __future__ import annotations

import json

import pytest

from store.ingest import ingest
from tests.store.ingest_helpers import llava_row, png, samples, write_json, write_jsonl

TRICKY = [
    '<image>\n  What is "this"?\t',
    "Ünïcödé ✓ 😀 \\ back\\slash / slash \u2028 sep",
    "ctrl \x01\x07 chars \x7f and \r\n newlines",
    "  <image>  between  <image>  tokens  ",
    "\u00a0nbsp-padded\u00a0",
    "",
]


def _llava_rows():
    rows = []
    for i, text in enumerate(TRICKY):
        rows.append(
            {
                "id": f"t{i}" if i % 3 else i,  # string and integer ids
                "image": ["img/a.png", "img/missing.png"][: i % 3] if i % 2 else "img/a.png",
                "conversations": [
                    {"from": "system", "value": "sys"},
                    {"from": "human", "value": text},
                    {"from": "gpt", "value": text[::-1]},
                    {"from": "human", "value": "again?"},
                    {"from": "gpt", "value": None},
                ],
                "task": ["yesno", "", None][i % 3],
                **({"meta": {"n": i, "f": 0.5, "s": text}} if i % 2 else {}),
            }
        )
    rows += [
        llava_row(0),  # duplicate id "s0" ...
        llava_row(0),
        {"id": "", "conversations": []},  # empty id -> '#<row>'
        {"id": "noconv", "image": "../escape.png"},
        llava_row(9, "img/a.png", answer="x" * 40000),
        {"id": "t1", "image": "", "conversations": [{"from": "human", "value": "dup of t1"}]},
        {"id": "no-content", "conversations": [{"from": "human"}, {"from": "gpt", "value": "a"}]},
    ]
    return rows


def _compare(catalog, path, **kwargs):
    fast = ingest(catalog, path, name="fast", **kwargs)
    slow = ingest(catalog, path, name="slow", engine="python", **kwargs)
    assert (fast.engine, slow.engine) == ("duckdb", "python")
    strip = ("sample_id", "dataset_id")
    a = [{k: v for k, v in s.items() if k not in strip} for s in samples(catalog, "fast")]
    b = [{k: v for k, v in s.items() if k not in strip} for s in samples(catalog, "slow")]
    assert a == b
    assert fast.fingerprint == slow.fingerprint and fast.flags == slow.flags
    return a


@pytest.fixture
def data(tmp_path):
    png(tmp_path / "d" / "img" / "a.png")
    return tmp_path / "d"


def test_llava_array_and_lines_agree(catalog, data):
    rows = _llava_rows()
    got = _compare(catalog, write_json(data / "tricky.json", rows))
    assert len(got) == len(rows)
    assert {f for s in got for f in s["flags"]} >= {
        "duplicate_id",
        "missing_image",
        "path_escape",
        "long_text",
        "image_token_mismatch",
        "empty_answer",
    }
    # The fast path's compact JSON is still the conversation, unchanged.
    turns = json.loads(got[1]["conversation"])
    assert turns[1]["content"] == TRICKY[1] and turns[4] == {"role": "assistant", "content": ""}
    assert json.loads(got[1]["extra"]) == {"meta": {"n": 1, "f": 0.5, "s": TRICKY[1]}}
    assert got[4]["question"] == "\u00a0nbsp-padded\u00a0"  # only ASCII blanks are trimmed
    assert got[3]["question"] == "between tokens"
    _compare(catalog, write_jsonl(data / "tricky.jsonl", rows), fmt="llava")


def test_swift_and_sharegpt_agree(catalog, data):
    swift = [
        {
            "messages": [
                {"role": "system", "content": TRICKY[1]},
                {"role": "user", "content": "<image><image>" + TRICKY[0]},
                {"role": "assistant", "content": TRICKY[2]},
            ],
            "images": ["img/a.png", "/abs/elsewhere.png"],
            "objects": {"bbox": [[1, 2, 3, 4]]},
        },
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
    ]
    _compare(catalog, write_jsonl(data / "s.jsonl", swift))
    share = [
        {
            "conv": [{"who": "me", "text": "<image>Q"}, {"who": "bot", "text": "A"}],
            "pics": ["img/a.png"],
            "sys": TRICKY[1],
        },
        {"conv": [{"who": "me", "text": "Q2"}, {"who": "bot", "text": "A2"}], "sys": ""},
    ]
    write_json(data / "share.json", share)
    write_json(
        data / "dataset_info.json",
        {
            "share": {
                "file_name": "share.json",
                "formatting": "sharegpt",
                "columns": {"messages": "conv", "images": "pics", "system": "sys"},
                "tags": {
                    "role_tag": "who",
                    "content_tag": "text",
                    "user_tag": "me",
                    "assistant_tag": "bot",
                },
            }
        },
    )
    got = _compare(catalog, data / "dataset_info.json")
    assert json.loads(got[0]["conversation"])[0] == {"role": "system", "content": TRICKY[1]}


@pytest.mark.parametrize(
    "odd",
    [
        {"id": 1.5, "conversations": []},  # a float id
        {"id": "x", "image": [{"path": "img/a.png"}], "conversations": []},  # dict image entry
    ],
)
def test_unusual_rows_go_the_python_way_and_still_ingest(catalog, data, odd):
    path = write_json(data / "odd.json", [llava_row(0), odd])
    report = ingest(catalog, path)
    assert report.engine == "python" and report.n_samples == 2
