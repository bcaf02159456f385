"""Embedded images out again: `--format parquet` (Hub-style, images inside), the line formats
pointing at the image store, and the CLI end to end on shards."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner

from store.export import export
from store.ingest import ingest
from tests.store import hub_helpers as hub
from tests.store.ingest_helpers import samples


def test_parquet_export_embeds_images_in_trl_form_and_reads_back(tmp_path, catalog, monkeypatch):
    monkeypatch.setattr("store.export.parquet.ROWS_PER_GROUP", 2)  # several row groups
    rows = [
        hub.cauldron_row(i, [hub.RED, hub.BLUE] if i % 2 else [hub.BLUE], turns=1 + i % 2)
        for i in range(5)
    ]
    ingest(catalog, hub.write_cauldron(tmp_path / "c.parquet", rows), name="c")
    result = export(catalog, dataset="c", fmt="parquet", out_path=tmp_path / "out" / "c.parquet")
    assert (result.format, result.n_exported) == ("parquet", 5)
    assert result.sha256 == hashlib.sha256(result.path.read_bytes()).hexdigest()
    meta = json.loads(result.sidecar_path.read_text())
    assert meta["format"] == "parquet" and meta["counts"]["exported"] == 5

    pf = pq.ParquetFile(result.path)
    assert pf.metadata.num_row_groups == 3
    features = json.loads(pf.schema_arrow.metadata[b"huggingface"])["info"]["features"]
    assert features["images"] == [{"_type": "Image"}]
    table = pf.read()
    assert str(table.schema.field("images").type) == (
        "list<element: struct<bytes: binary, path: string>>"
    )
    row = table.slice(1, 1).to_pylist()[0]
    assert [img["bytes"] for img in row["images"]] == [hub.RED, hub.BLUE]
    user = row["messages"][0]
    assert user["role"] == "user"
    assert user["content"] == [
        {"index": 0, "text": None, "type": "image"},
        {"index": 1, "text": None, "type": "image"},
        {"index": None, "text": "Question 1.0?", "type": "text"},
    ]
    assert [m["role"] for m in row["messages"]] == ["user", "assistant"] * 2
    assert row["task"] == "vqav2"

    back = ingest(catalog, result.path, name="back")  # what TRL reads, Thresher reads too
    assert (back.format, back.flags, back.images_written) == ("trl", {}, 0)
    for a, b in zip(samples(catalog, "c"), samples(catalog, "back"), strict=True):
        assert (a["conversation"], a["images"], a["task"]) == (
            b["conversation"],
            b["images"],
            b["task"],
        )


def test_line_formats_point_at_the_store_and_skip_remote_images(tmp_path, catalog, workspace):
    rows = [hub.trl_row(0, [hub.RED]), hub.trl_row(1, [hub.BLUE])]
    ingest(catalog, hub.write_trl(tmp_path / "t.parquet", rows), name="t")
    chat = [
        hub.openai_row(0, "https://example.com/a.png"),
        hub.openai_row(1, "data:image/png;base64,"),
    ]
    ingest(catalog, hub.write_jsonl(tmp_path / "chat.jsonl", chat), name="chat")

    llava = export(catalog, dataset="t", fmt="llava", out_path=tmp_path / "t.json")
    written = json.loads(llava.path.read_text())
    assert all(Path(r["image"]).read_bytes() in (hub.RED, hub.BLUE) for r in written)
    rel = export(
        catalog,
        dataset="t",
        fmt="swift",
        out_path=tmp_path / "t.jsonl",
        path_style="relative",
        image_root=workspace.images_dir,
    )
    first = json.loads(rel.path.read_text().splitlines()[0])
    digest = hashlib.sha256(hub.RED).hexdigest()
    assert first["images"] == [f"{digest[:2]}/{digest}.png"]
    assert rel.meta["image_root"] == str(workspace.images_dir)

    out = export(catalog, dataset="chat", fmt="swift", out_path=tmp_path / "chat-out.jsonl")
    # The URL is flagged remote_image, the empty data URL corrupt_image: neither is exported.
    assert out.n_exported == 0 and out.skipped == {"corrupt_image": 1, "remote_image": 1}


def test_cli_ingests_shards_as_one_dataset_and_exports_parquet(tmp_path):
    from tui.cli import cli

    folder = tmp_path / "ov"
    paths = hub.write_onevision_shards(
        folder,
        [
            [hub.onevision_row(0, hub.RED), hub.onevision_row(1, None)],
            [hub.onevision_row(2, hub.BLUE)],
        ],
    )
    ws = tmp_path / "ws"
    runner = CliRunner()
    # Two paths: what the shell hands over for `thresher ingest ov/train-*.parquet`.
    args = ["-w", str(ws), "ingest", *map(str, paths[::-1]), "--name", "ov"]
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    words = " ".join(result.output.split())
    assert "ov (llava" in words and "3 samples" in words
    assert "embedded images: 2 written" in words
    again = runner.invoke(cli, ["-w", str(ws), "ingest", str(folder), "--name", "ov"])
    words = " ".join(again.output.split())  # rich wraps lines at the terminal width
    assert "0 written" in words and "3 unchanged" in words
    exported = runner.invoke(
        cli,
        ["-w", str(ws), "export", "--dataset", "ov", "--format", "parquet", "-o", str(tmp_path)],
    )
    assert exported.exit_code == 0, exported.output
    table = pq.read_table(tmp_path / "ov-parquet.parquet")
    assert table.column("id").to_pylist() == ["ov-0", "ov-1", "ov-2"]
    assert table.column("images").to_pylist()[1] == []
    remote = hub.write_jsonl(tmp_path / "r.jsonl", [hub.openai_row(0, "https://example.com/x.png")])
    note = runner.invoke(cli, ["-w", str(ws), "ingest", str(remote)])
    words = " ".join(note.output.split())
    assert "remote_image 1" in words and "does not download" in words
    assert os.listdir(ws / "images" / ".incoming") == []
