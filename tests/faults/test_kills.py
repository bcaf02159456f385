"""kill -9 at set points (THRESHER_FAULT=kill:POINT): nothing committed is lost, nothing half-done
is visible, and the next command cleans up what the killed one left."""

from __future__ import annotations

import json

import pytest

from tests.faults.conftest import cli_inproc, run_cli


def _visible_and_hidden(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def ingested(catalog, small_json):
    from store.ingest import ingest

    ingest(catalog, small_json, name="small", fmt="llava")
    return catalog.workspace


@pytest.mark.parametrize("point", ["export.written", "export.publish"])
def test_killed_export_leaves_nothing_visible_and_the_next_export_cleans_up(
    ingested, tmp_path, point
):
    out = tmp_path / "exp" / "small.json"
    args = ("export", "--dataset", "small", "-f", "llava", "-o", str(out))
    killed = run_cli(ingested.root, *args, fault=f"kill:{point}")
    assert killed.returncode == -9
    left = _visible_and_hidden(out.parent)
    assert not out.exists() and any(".tmp-" in name for name in left), left
    again = cli_inproc(ingested.root, *args)
    assert again.returncode == 0, again.stderr
    assert "removed" in again.stderr and "temp file" in again.stderr, again.stderr
    assert _visible_and_hidden(out.parent) == ["small.json", "small.json.meta.json"]
    assert len(json.loads(out.read_text())) == 500
    proc = cli_inproc(ingested.root, "status")  # one exports row: the killed one never committed
    assert proc.returncode == 0 and "exports   1" in proc.stdout, proc.stdout


@pytest.mark.parametrize("point", ["catalog.commit", "catalog.committed"])
def test_killed_reingest_is_all_or_nothing(ingested, small_json, point):
    rows = json.loads(small_json.read_text())
    changed = small_json.with_name("small.json")
    changed.write_text(json.dumps(rows[:250]))  # a re-ingest that removes half the samples
    killed = run_cli(
        ingested.root, "ingest", str(changed), "--name", "small", fault=f"kill:{point}"
    )
    assert killed.returncode == -9
    proc = cli_inproc(ingested.root, "datasets")
    assert proc.returncode == 0, proc.stderr
    expected = "500" if point == "catalog.commit" else "250"  # before vs after COMMIT
    assert expected in proc.stdout, proc.stdout
    leftovers = [p.name for p in ingested.root.iterdir() if p.name.startswith("catalog.duckdb.")]
    assert leftovers == [], leftovers  # no WAL left once the next command ran
