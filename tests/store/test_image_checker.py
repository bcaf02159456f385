"""The image checker across the chunks of one ingest (a folder of shards is finished in chunks)."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa

from store.ingest.images import MISSING, OK, ImageChecker
from tests.store.ingest_helpers import png


def test_a_folder_is_listed_once_per_ingest_and_again_when_a_file_is_new(tmp_path, monkeypatch):
    for name in ("a", "b", "c"):
        png(tmp_path / f"{name}.png")
    listed: list[str] = []
    real_scandir = os.scandir

    def scandir(path):
        listed.append(str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    checker = ImageChecker("exists", workers=2)
    try:
        for chunk in (["a", "b"], ["c", "a"], ["b"]):  # three chunks of one ingest
            paths = pa.array([str(tmp_path / f"{n}.png") for n in chunk])
            assert (checker.check(paths, np.zeros(len(chunk), dtype=bool)) == OK).all()
        assert listed == [str(tmp_path)]  # each chunk listed the folder before

        png(tmp_path / "d.png")  # written after the listing (a fetched or stored image, say)
        paths = pa.array([str(tmp_path / "d.png"), str(tmp_path / "gone.png")])
        assert checker.check(paths, np.zeros(2, dtype=bool)).tolist() == [OK, MISSING]
        assert listed == [str(tmp_path)] * 2
    finally:
        checker.close()
