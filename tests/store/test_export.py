"""Manifest export: image/token rule, skips and fixes, decisions applied, sidecar, atomic writes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from store import decisions
from store.errors import NotFound, ThresherError
from store.export import FORMATS, export
from store.export import manifest as manifest_mod
from store.ingest import ingest
from tests.helpers.datasets import insert_synthetic_samples, ofa_result, sample_ids, write_run


def read_manifest(path: Path, fmt: str) -> list[dict]:
    """Parse an exported manifest into records with `id`, `images` and `turns` (role, content)."""
    if fmt == "parquet":  # TRL typed parts: an image part is a token, text joins with "\n"
        return [
            {
                "id": r["id"],
                "images": [i["path"] for i in r["images"]],
                "turns": [
                    (
                        m["role"],
                        "\n".join(
                            p["text"] if p["type"] == "text" else "<image>" for p in m["content"]
                        ),
                    )
                    for m in r["messages"]
                ],
            }
            for r in pq.read_table(path).to_pylist()
        ]
    text = path.read_text(encoding="utf-8")
    if fmt == "ids":
        return [{"id": line} for line in text.splitlines()]
    rows = [json.loads(line) for line in text.splitlines()] if fmt == "swift" else json.loads(text)
    out = []
    for r in rows:
        if fmt == "llava":
            img = r.get("image")
            images = [] if img is None else [img] if isinstance(img, str) else img
            roles = {"human": "user", "gpt": "assistant"}
            turns = [(roles.get(t["from"], t["from"]), t["value"]) for t in r["conversations"]]
        else:
            images = r["images"]
            turns = [(t["role"], t["content"]) for t in r["messages"]]
        out.append({"id": r["id"], "images": images, "turns": turns})
    return out


@pytest.fixture
def edge_dataset(catalog, tmp_path):
    """A LLaVA file with one of each case the image/token rule must handle."""
    root = tmp_path / "edge"
    (root / "img").mkdir(parents=True)
    for name in ("a", "b", "c"):
        Image.new("RGB", (8, 8), (200, 10, 10)).save(root / "img" / f"{name}.png")
    (root / "img" / "empty.png").write_bytes(b"")  # zero bytes: corrupt
    q = "What is it?"
    rows = [
        {"id": "ok", "image": "img/a.png", "conversations": [{"from": "human", "value": f"<image>\n{q}"}, {"from": "gpt", "value": "red"}]},
        {"id": "no-token", "image": "img/b.png", "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": "red"}]},
        {"id": "two-images-no-token", "image": ["img/a.png", "img/c.png"], "conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": q}, {"from": "gpt", "value": "both red"}]},
        {"id": "too-many-tokens", "image": "img/a.png", "conversations": [{"from": "human", "value": f"<image><image>\n{q}"}, {"from": "gpt", "value": "red"}]},
        {"id": "stray-token", "conversations": [{"from": "human", "value": f"<image>\n{q}"}, {"from": "gpt", "value": "?"}]},
        {"id": "missing", "image": "img/nope.png", "conversations": [{"from": "human", "value": f"<image>\n{q}"}, {"from": "gpt", "value": "red"}]},
        {"id": "corrupt", "image": "img/empty.png", "conversations": [{"from": "human", "value": f"<image>\n{q}"}, {"from": "gpt", "value": "red"}]},
        {"id": "text", "conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}]},
    ]  # fmt: skip
    path = root / "edge.json"
    path.write_text(json.dumps(rows))
    ingest(catalog, path, name="edge", fmt="llava")
    return root


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_exported_sample_has_as_many_images_as_tokens(catalog, edge_dataset, fmt):
    res = export(catalog, dataset="edge", fmt=fmt)
    assert res.n_selected == 8
    assert res.skipped == {"corrupt_image": 1, "image_token_mismatch": 2, "missing_image": 1}
    assert res.n_fixed == 2 and res.n_exported == 4
    rows = read_manifest(res.path, fmt)
    assert [r["id"] for r in rows] == ["ok", "no-token", "two-images-no-token", "text"]
    if fmt == "ids":
        return
    for r in rows:
        assert sum(c.count("<image>") for _, c in r["turns"]) == len(r["images"]), r
    fixed = {r["id"]: r for r in rows}
    # The LLaVA convention: missing tokens go in front of the first user turn.
    assert fixed["no-token"]["turns"][0] == ("user", "<image>\nWhat is it?")
    assert fixed["two-images-no-token"]["turns"][:2] == [
        ("system", "Be brief."),
        ("user", "<image>\n<image>\nWhat is it?"),
    ]
    assert fixed["ok"]["images"] == [str(edge_dataset / "img" / "a.png")]

    flagged = export(
        catalog, dataset="edge", fmt=fmt, include_flagged=True, out_path=res.path.parent / "f"
    )
    assert flagged.skipped == {"image_token_mismatch": 2} and flagged.n_exported == 6
    for r in read_manifest(flagged.path, fmt):
        assert sum(c.count("<image>") for _, c in r["turns"]) == len(r["images"]), r


def test_llava_omits_image_for_text_only_and_lists_multi_image(catalog, edge_dataset):
    rows = json.loads(export(catalog, dataset="edge", fmt="llava").path.read_text())
    by_id = {r["id"]: r for r in rows}
    assert "image" not in by_id["text"]
    assert isinstance(by_id["ok"]["image"], str)
    assert isinstance(by_id["two-images-no-token"]["image"], list)
    assert by_id["two-images-no-token"]["conversations"][0]["from"] == "system"


def test_relative_paths_resolve_from_the_chosen_root(catalog, edge_dataset, tmp_path):
    res = export(catalog, dataset="edge", fmt="swift", path_style="relative")
    assert res.meta["image_root"] == str(edge_dataset)  # the source's root by default
    assert [r["images"] for r in read_manifest(res.path, "swift")][:3] == [
        ["img/a.png"],
        ["img/b.png"],
        ["img/a.png", "img/c.png"],
    ]
    out = tmp_path / "deep" / "out" / "m.jsonl"
    res = export(
        catalog,
        dataset="edge",
        fmt="swift",
        path_style="relative",
        out_path=out,
        image_root=out.parent,
    )
    for r in read_manifest(res.path, "swift"):
        for p in r["images"]:
            assert p.startswith("../../")
            assert (out.parent / p).resolve().exists(), p
    assert res.meta["path_style"] == "relative"


def test_sidecar_checksum_counts_and_exports_row(catalog, edge_dataset):
    res = export(catalog, dataset="edge", fmt="sharegpt")
    meta = json.loads(res.sidecar_path.read_text())
    assert res.sidecar_path.name == res.path.name + ".meta.json"
    assert meta["sha256"] == hashlib.sha256(res.path.read_bytes()).hexdigest() == res.sha256
    assert meta["bytes"] == res.path.stat().st_size
    assert meta["counts"] == {
        "selected": 8,
        "exported": 4,
        "skipped": {"corrupt_image": 1, "image_token_mismatch": 2, "missing_image": 1},
        "skipped_total": 4,
        "fixed_image_tokens": 2,
    }
    assert meta["dataset"]["name"] == "edge" and meta["dataset"]["fingerprint"]
    assert meta["run"] is None and meta["decisions"] is None
    assert res.path.parent == catalog.workspace.exports_dir
    info = json.loads((res.path.parent / "dataset_info.json").read_text())
    entry = info[res.path.stem]
    assert entry["file_name"] == res.path.name and entry["formatting"] == "sharegpt"
    assert entry["columns"] == {"messages": "messages", "images": "images"}
    with catalog.connect() as con:
        row = con.execute(
            "SELECT export_id, format, path, n_samples, sha256, run_id FROM exports"
        ).fetchall()
    assert row == [(res.export_id, "sharegpt", str(res.path), 4, res.sha256, None)]
    # A second ShareGPT export in the same folder joins the existing dataset_info.json.
    other = export(catalog, dataset="edge", fmt="sharegpt", out_path=res.path.parent / "b.json")
    info = json.loads((res.path.parent / "dataset_info.json").read_text())
    assert set(info) == {res.path.stem, other.path.stem}


def test_export_of_a_run_applies_decisions_and_records_them(catalog):
    insert_synthetic_samples(catalog, "syn", 30)
    ids = sample_ids(catalog, "syn")
    result = ofa_result(ids, clusters=3, selected=lambda i: i % 2 == 0)
    write_run(catalog, "r1", "syn", result, params={"k": 3, "r": 0.5})
    decisions.record(catalog, "r1", [ids[0], ids[2]], "drop")
    decisions.record(catalog, "r1", [ids[1]], "keep", note="good")
    decisions.record(catalog, "r1", [ids[2]], "clear")
    res = export(catalog, dataset="syn", run_id="r1", fmt="ids")
    expected = [f"s{i}" for i in range(30) if (i % 2 == 0 and i != 0) or i == 1]
    assert res.path.read_text().splitlines() == expected
    meta = res.meta
    assert meta["run"]["method"] == "ofa" and meta["run"]["params"] == {"k": 3, "r": 0.5}
    assert meta["run"]["algorithmic_selected"] == 15 and meta["run"]["effective_selected"] == 15
    assert meta["selection"] == "default"
    assert meta["decisions"]["applied"] == 2  # s0 dropped, s1 kept; s2 cleared
    assert meta["decisions"]["log_entries"] == 4
    with catalog.connect() as con:
        last = con.execute("SELECT max(seq) FROM decisions").fetchall()[0][0]
        row = con.execute(
            "SELECT n_decisions, last_decision_seq, selection FROM exports"
        ).fetchall()
    assert meta["decisions"]["last_seq"] == last
    assert row == [(2, last, "default")]
    assert res.path.name == "syn-r1-default-ids.txt"
    wide = export(catalog, dataset="syn", run_id="r1", selection="wide", fmt="ids")
    assert len(wide.path.read_text().splitlines()) == 29  # every sample but the dropped s0


def test_a_failure_mid_export_leaves_no_file_and_no_row(catalog, monkeypatch):
    insert_synthetic_samples(catalog, "syn", 3000)
    first = export(catalog, dataset="syn", fmt="llava")
    before = first.path.read_bytes()

    def boom(reader, total, progress):
        for i, batch in enumerate(reader):
            if i == 1:
                raise OSError("No space left on device")
            yield batch

    monkeypatch.setattr(manifest_mod, "BATCH_ROWS", 500)
    monkeypatch.setattr(manifest_mod, "_progress", boom)
    with pytest.raises(OSError, match="No space left"):
        export(catalog, dataset="syn", fmt="llava")
    with pytest.raises(OSError, match="No space left"):
        export(catalog, dataset="syn", fmt="swift")
    assert first.path.read_bytes() == before  # the earlier export is untouched
    names = sorted(p.name for p in first.path.parent.iterdir())
    assert names == [first.path.name, first.sidecar_path.name]  # no temp files, no swift file
    with catalog.connect() as con:
        assert con.execute("SELECT count(*) FROM exports").fetchall()[0][0] == 1


def test_a_failure_while_publishing_rolls_back(catalog, monkeypatch):
    insert_synthetic_samples(catalog, "syn", 10)
    real_replace = manifest_mod._replace

    def flaky_replace(src, dst):
        if str(dst).endswith(".meta.json"):
            raise OSError("EIO")
        return real_replace(src, dst)

    monkeypatch.setattr(manifest_mod, "_replace", flaky_replace)
    with pytest.raises(OSError, match="EIO"):
        export(catalog, dataset="syn", fmt="swift")
    assert list(catalog.workspace.exports_dir.iterdir()) == []
    with catalog.connect() as con:
        assert con.execute("SELECT count(*) FROM exports").fetchall()[0][0] == 0


def test_user_errors_are_clear(catalog):
    insert_synthetic_samples(catalog, "syn", 3)
    with pytest.raises(NotFound, match="no dataset 'nope'.*known: syn"):
        export(catalog, dataset="nope", fmt="llava")
    with pytest.raises(ThresherError, match="unknown export format 'csv'"):
        export(catalog, dataset="syn", fmt="csv")
    with pytest.raises(ThresherError, match="pass --run"):
        export(catalog, dataset="syn", selection="default", fmt="llava")
    with pytest.raises(NotFound, match="no run 'ghost'"):
        export(catalog, dataset="syn", run_id="ghost", fmt="llava")


def test_run_samples_removed_from_the_dataset_are_counted(catalog):
    insert_synthetic_samples(catalog, "syn", 10)
    ids = sample_ids(catalog, "syn")
    write_run(catalog, "r1", "syn", pa.table({"sample_id": ids, "selected": [True] * 10}),
              outputs={"selections": {"default": "selected"}, "default_selection": "default"})  # fmt: skip
    with catalog.transaction() as con:  # what a re-ingest without these two samples leaves
        con.execute("DELETE FROM samples WHERE sample_id IN (?, ?)", ids[3:5])
    res = export(catalog, dataset="syn", run_id="r1", fmt="ids")
    assert res.skipped == {"not_in_dataset": 2} and res.n_exported == 8 and res.n_selected == 10
    assert "s3" not in res.path.read_text().split()


def test_a_run_without_a_selection_cannot_be_exported(catalog):
    insert_synthetic_samples(catalog, "syn", 4)
    ids = sample_ids(catalog, "syn")
    write_run(catalog, "ft", "syn", pa.table({"sample_id": ids}), outputs={}, method="finetune")
    with pytest.raises(ThresherError, match="ft \\(finetune\\) selects nothing"):
        export(catalog, dataset="syn", run_id="ft", fmt="ids")
    assert list(catalog.workspace.exports_dir.iterdir()) == []
