"""`thresher demo`: builds and ingests the demo; a second run duplicates nothing."""

from __future__ import annotations

import json

from store.catalog import Catalog
from tests.store.test_export_cli import thresher


def test_demo_builds_ingests_and_is_idempotent(workspace, capsys):
    assert thresher(workspace, "demo", "--samples", "40", "--seed", "2", "--data-only") == 0
    out = capsys.readouterr().out
    assert "dataset demo: 40 samples (40 new" in out and "Demo ready" in out
    data = workspace.data_dir / "demo" / "demo.json"
    first = data.read_bytes()
    assert len(json.loads(first)) == 40

    assert thresher(workspace, "demo", "--samples", "40", "--seed", "2", "--data-only") == 0
    assert "40 unchanged" in capsys.readouterr().out
    assert data.read_bytes() == first
    with Catalog(workspace).connect() as con:
        assert con.execute("SELECT count(*) FROM samples").fetchall()[0][0] == 40
        assert con.execute("SELECT count(*) FROM datasets").fetchall()[0][0] == 1
        tasks = {r[0] for r in con.execute("SELECT DISTINCT task FROM samples").fetchall()}
    assert {"yesno", "mc", "count", "short"} <= tasks

    # Another name and seed: a second, different demo dataset beside the first.
    assert (
        thresher(workspace, "demo", "-n", "10", "--seed", "3", "--name", "demo-b", "--data-only")
        == 0
    )
    assert (workspace.data_dir / "demo-b" / "demo.json").exists()
    with Catalog(workspace).connect() as con:
        assert con.execute("SELECT count(*) FROM samples").fetchall()[0][0] == 50
