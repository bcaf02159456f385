"""The `--format parquet` export loads with Hugging Face `datasets` as a Hub dataset would:
images decode through its Image feature, messages come back as exported. Offline, cache in tmp."""

from __future__ import annotations

import json

import pytest

from store.export import export
from store.ingest import ingest
from tests.store import hub_helpers as hub
from tests.store.ingest_helpers import samples


@pytest.fixture
def offline_datasets(tmp_path, monkeypatch):
    """`datasets` with no network and its caches under tmp_path (never ~/.cache)."""
    for var, value in {
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets"),
    }.items():
        monkeypatch.setenv(var, value)
    datasets = pytest.importorskip("datasets")
    # The flags are read when datasets is imported; another test may have imported it first.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    return datasets


def test_parquet_export_loads_with_datasets_images_decode_and_messages_match(
    tmp_path, catalog, offline_datasets
):
    rows = [hub.trl_row(0, [hub.RED, hub.BLUE]), hub.trl_row(1, []), hub.trl_row(2, [hub.GREEN])]
    ingest(catalog, hub.write_trl(tmp_path / "t.parquet", rows), name="t")
    result = export(catalog, dataset="t", fmt="parquet", out_path=tmp_path / "out" / "t.parquet")

    ds = offline_datasets.load_dataset(
        "parquet", data_files=str(result.path), split="train", cache_dir=str(tmp_path / "hf-cache")
    )
    assert len(ds) == 3
    image_feature = ds.features["images"]
    inner = getattr(image_feature, "feature", None) or image_feature[0]
    assert isinstance(inner, offline_datasets.Image)  # from the export's `huggingface` metadata

    got = ds[0]["images"]
    assert [(im.format, im.size) for im in got] == [("PNG", (8, 6)), ("JPEG", (8, 6))]
    assert got[0].convert("RGB").getpixel((0, 0)) == (255, 0, 0)
    assert ds[1]["images"] == []
    assert ds[2]["images"][0].size == (5, 5)

    for row, sample in zip(ds, samples(catalog, "t"), strict=True):
        turns = json.loads(sample["conversation"])
        assert [m["role"] for m in row["messages"]] == [t["role"] for t in turns]
        for message, turn in zip(row["messages"], turns, strict=True):
            text = "\n".join(
                "<image>" if p["type"] == "image" else p["text"] for p in message["content"]
            )
            assert text == turn["content"]
