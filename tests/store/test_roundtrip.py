"""Round trip every format: ingest -> export -> ingest gives the same samples, conversations and images."""

from __future__ import annotations

import json

import pytest

from store.export import export
from store.ingest import ingest
from tests.helpers.datasets import make_demo_dataset
from tests.store.ingest_helpers import samples
from tests.store.test_export import read_manifest

MIX = {"yesno": 1, "mc": 1, "count": 1, "short": 1, "multiturn": 1, "text": 0.5, "compare": 0.5}


def _samples(catalog, name):
    return [
        (
            s["orig_id"],
            json.loads(s["conversation"]),
            list(s["images"]),
            sorted(s["flags"]),
            s["task"],
        )
        for s in samples(catalog, name)
    ]


@pytest.fixture
def demo(catalog):
    return make_demo_dataset(catalog, n=120, seed=5, name="demo", mix=MIX)


@pytest.mark.parametrize("fmt", ["llava", "swift", "sharegpt"])
@pytest.mark.parametrize("paths", ["absolute", "relative"])
def test_ingest_export_ingest_is_identity(catalog, demo, tmp_path, fmt, paths):
    original = _samples(catalog, demo)
    assert len(original) == 120 and not any(f for *_, f, _ in original)
    kinds = {(len(i), sum(t["content"].count("<image>") for t in c)) for _, c, i, _, _ in original}
    assert {(0, 0), (1, 1), (2, 2)} <= kinds  # text-only, one image, two images
    assert any(len(c) >= 4 for _, c, _, _, _ in original)  # multi-turn
    assert {t for *_, t in original} == set(MIX)  # the task family travels too

    out = tmp_path / "out" / f"demo-{fmt}{'.jsonl' if fmt == 'swift' else '.json'}"
    res = export(catalog, dataset=demo, fmt=fmt, path_style=paths, out_path=out)
    assert res.n_exported == 120 and res.skipped == {}
    for r in read_manifest(res.path, fmt):  # the trainers' rule, on every exported sample
        assert sum(c.count("<image>") for _, c in r["turns"]) == len(r["images"]), r["id"]
    # Relative paths read against the image root the sidecar names (the source's, by default).
    root = res.meta["image_root"]
    assert (root is None) == (paths == "absolute")
    report = ingest(catalog, res.path, name=f"again-{fmt}", image_root=root)
    assert report.format == fmt
    again = _samples(catalog, f"again-{fmt}")
    assert again == original
    if paths == "relative":  # the source's own relative paths come back
        rows = json.loads(res.path.read_text()) if fmt != "swift" else None
        first = rows[0] if rows else json.loads(res.path.read_text().splitlines()[0])
        img = first.get("image") or first.get("images")
        assert (img if isinstance(img, str) else img[0]).startswith("images/demo5-")

    # Exporting the re-ingested copy gives the very same bytes.
    if paths == "absolute":
        twice = export(
            catalog, dataset=f"again-{fmt}", fmt=fmt, out_path=tmp_path / "twice" / out.name
        )
        assert twice.sha256 == res.sha256


def test_id_list_round_trip(catalog, demo):
    res = export(catalog, dataset=demo, fmt="ids")
    assert res.path.read_text().splitlines() == [o for o, *_ in _samples(catalog, demo)]


def _swift_source(tmp_path):
    """ms-swift records with keys Thresher does not model: per-turn `loss`, grounding `objects`."""
    from PIL import Image

    img = tmp_path / "src" / "a.png"
    img.parent.mkdir(parents=True)
    Image.new("RGB", (8, 8), "red").save(img)
    rows = [
        {
            "id": "g1",
            "messages": [
                {"role": "system", "content": "be brief", "loss": False},
                {"role": "user", "content": "<image>Find the <ref-object>"},
                {"role": "assistant", "content": "<bbox>", "loss": True},
                {"role": "user", "content": "and again?"},
                {"role": "assistant", "content": "no", "loss": False},
            ],
            "images": [str(img)],
            "objects": {"ref": ["cat"], "bbox": [[1, 2, 3, 4]]},
            "messages_version": 2,
        },
        {"id": "plain", "messages": [{"role": "user", "content": "hi"}], "images": []},
    ]
    path = tmp_path / "src" / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows, path


@pytest.mark.parametrize("engine", ["auto", "python"])
def test_unmodelled_sample_and_turn_keys_survive_ingest_and_export(catalog, tmp_path, engine):
    rows, path = _swift_source(tmp_path)
    ingest(catalog, path, name="src", engine=engine)
    swift = export(catalog, dataset="src", fmt="swift", out_path=tmp_path / "o.jsonl")
    written = [json.loads(line) for line in swift.path.read_text().splitlines()]
    assert written == rows  # every key, every value, every turn
    assert list(written[0]["messages"][2]) == ["role", "content", "loss"]  # ours first
    assert swift.meta["source_keys"] == "kept"

    llava = export(catalog, dataset="src", fmt="llava", out_path=tmp_path / "o.json")
    first = json.loads(llava.path.read_text())[0]
    assert first["objects"] == rows[0]["objects"] and first["messages_version"] == 2
    assert [t.get("loss") for t in first["conversations"]] == [False, None, True, None, False]
    assert first["conversations"][2] == {"from": "gpt", "value": "<bbox>", "loss": True}

    bare = export(
        catalog, dataset="src", fmt="swift", out_path=tmp_path / "b.jsonl", keep_extra=False
    )
    first = json.loads(bare.path.read_text().splitlines()[0])
    assert "objects" not in first and all("loss" not in m for m in first["messages"])
    assert bare.meta["source_keys"] == "dropped"


def test_a_source_key_named_like_one_the_format_writes_is_dropped(catalog, tmp_path):
    path = tmp_path / "llava.json"
    path.write_text(json.dumps([{
        "id": "x", "messages": "not ours", "conversations": [
            {"from": "human", "value": "q", "role": "narrator"}, {"from": "gpt", "value": "a"}],
    }]))  # fmt: skip
    ingest(catalog, path, name="clash")
    out = export(catalog, dataset="clash", fmt="swift", out_path=tmp_path / "c.jsonl")
    rec = json.loads(out.path.read_text())
    assert rec["messages"] == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
    ]  # neither the source's top-level "messages" nor its turn "role" overrides ours
