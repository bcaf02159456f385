"""Stable sample ids across re-ingests, and the streaming reader across chunk and batch borders."""

from __future__ import annotations

import json

import pytest

import store.ingest.core as core
import store.ingest.readers as readers
from store.datasets import get_dataset
from store.ingest import ingest
from tests.store.ingest_helpers import llava_row, png, samples, write_json


@pytest.fixture
def data(tmp_path):
    png(tmp_path / "d" / "img" / "a.png")
    return tmp_path / "d"


def _ids(catalog, name):
    return {s["orig_id"]: s["sample_id"] for s in samples(catalog, name)}


def test_reingest_same_file_changes_nothing(catalog, data):
    path = write_json(data / "t.json", [llava_row(i) for i in range(5)])
    first = ingest(catalog, path)
    before = samples(catalog, "t")
    again = ingest(catalog, path)
    assert (again.n_new, again.n_updated, again.n_unchanged, again.n_removed) == (0, 0, 5, 0)
    assert again.dataset_id == first.dataset_id and again.fingerprint == first.fingerprint
    assert samples(catalog, "t") == before
    assert get_dataset(catalog, "t").n_samples == 5


def test_reingest_edited_file_keeps_known_ids_and_never_reuses_removed_ones(catalog, data):
    path = write_json(data / "t.json", [llava_row(i) for i in range(4)])
    ingest(catalog, path)
    ids0 = _ids(catalog, "t")
    base = ids0["s0"]
    assert sorted(ids0.values()) == [base, base + 1, base + 2, base + 3]

    # s9 added in front (s0 and s1 move down), s1 edited, s2 removed, s3 where it was.
    rows = [llava_row(9), llava_row(0), llava_row(1, answer="Blue"), llava_row(3)]
    write_json(path, rows)
    report = ingest(catalog, path)
    counts = (report.n_new, report.n_updated, report.n_unchanged, report.n_removed)
    assert counts == (1, 2, 1, 1)
    ids1 = _ids(catalog, "t")
    assert {k: ids1[k] for k in ("s0", "s1", "s3")} == {k: ids0[k] for k in ("s0", "s1", "s3")}
    assert ids1["s9"] == base + 4
    assert samples(catalog, "t")[2]["answer"] == "Blue"

    # s2 comes back: it gets a fresh ordinal, not its old id (decisions on that id stay dead).
    write_json(path, [*rows, llava_row(2)])
    ingest(catalog, path)
    assert _ids(catalog, "t")["s2"] == base + 5


def test_same_file_under_two_names_gets_two_id_ranges(catalog, data):
    path = write_json(data / "t.json", [llava_row(i) for i in range(3)])
    a = ingest(catalog, path, name="a")
    b = ingest(catalog, path, name="b")
    assert a.dataset_id != b.dataset_id
    assert {i >> 32 for i in _ids(catalog, "a").values()} == {a.dataset_id}
    assert {i >> 32 for i in _ids(catalog, "b").values()} == {b.dataset_id}


def test_reader_across_tiny_chunks_and_batches(catalog, data, monkeypatch):
    """Samples that straddle buffer refills parse identically and keep their line numbers."""
    rows = [llava_row(i, answer="x" * (i % 7) + 'é\n"quoted" ✓') for i in range(30)]
    rows[11]["conversations"][1]["value"] = "long " * 5000  # far longer than a chunk
    path = write_json(data / "t.json", rows)
    reference = ingest(catalog, path, name="ref")
    expected = samples(catalog, "ref")
    monkeypatch.setattr(readers, "CHUNK", 37)
    monkeypatch.setattr(core, "BATCH", 4)
    small = ingest(catalog, path, name="small")
    got = samples(catalog, "small")
    strip = ("sample_id", "dataset_id")
    assert [{k: v for k, v in s.items() if k not in strip} for s in got] == [
        {k: v for k, v in s.items() if k not in strip} for s in expected
    ]
    assert small.fingerprint == reference.fingerprint  # independent of batch borders
    assert json.loads(got[5]["conversation"])[1]["content"] == rows[5]["conversations"][1]["value"]

    progress = readers.Progress(path.stat().st_size)
    text = path.read_text(encoding="utf-8").splitlines()
    for rec in readers.iter_json_array(path, progress):
        # indent=1 puts each sample's "{" on its own line: the reported line is that line.
        assert text[rec.line - 1].strip() == "{"
        assert rec.value == rows[rec.index]
    assert progress.done == path.stat().st_size


def test_fingerprint_tracks_content(catalog, data):
    path = write_json(data / "t.json", [llava_row(i) for i in range(3)])
    first = ingest(catalog, path).fingerprint
    write_json(path, [llava_row(0), llava_row(1), llava_row(2, answer="Green")])
    assert ingest(catalog, path).fingerprint != first
