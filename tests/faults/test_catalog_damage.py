"""A truncated, overwritten or crashed catalog: one-line errors, a backup, `doctor --repair`."""

from __future__ import annotations

import pyarrow as pa

from store import catalog as catalog_mod
from store.catalog import Catalog
from store.catalog_health import backups, wal_bytes
from tests.faults.conftest import cli_inproc, one_line_error, run_cli
from tests.helpers.datasets import sample_ids, write_run


def _populated(catalog, small_json):
    from store.ingest import ingest

    ingest(catalog, small_json, name="small", fmt="llava")
    ids = sample_ids(catalog, "small")
    write_run(catalog, "r1", "small", pa.table({"sample_id": ids, "selected": [True] * len(ids)}))
    return catalog.workspace


COMMANDS = [
    ("datasets",),
    ("runs",),
    ("status",),
    ("decide", "r1", "keep", "--ids", "s1"),
    ("export", "--run", "r1", "-f", "ids"),
]


def test_truncated_and_garbage_catalogs_give_one_line_and_exit_1(catalog, small_json):
    ws = _populated(catalog, small_json)
    good = ws.catalog_path.read_bytes()
    for damage in (good[: len(good) // 2], b"this is not a database\n" * 50):
        ws.catalog_path.write_bytes(damage)
        for args in COMMANDS:
            line = one_line_error(cli_inproc(ws.root, *args))
            assert str(ws.catalog_path) in line and "thresher doctor --repair" in line, line


def test_backup_before_migration_and_repair_restores_it(catalog, small_json, monkeypatch):
    ws = _populated(catalog, small_json)
    version = catalog_mod.SCHEMA_VERSION
    assert backups(ws.catalog_path) == []  # nothing to migrate: no backup
    # A newer Thresher with one more migration opens this catalog: it backs it up first.
    migrations = [*catalog_mod.MIGRATIONS, "CREATE TABLE probe_v_next (x INTEGER);"]
    monkeypatch.setattr(catalog_mod, "MIGRATIONS", migrations)
    monkeypatch.setattr(catalog_mod, "SCHEMA_VERSION", version + 1)
    Catalog.open(ws)
    (backup,) = backups(ws.catalog_path)
    assert backup.name == f"catalog.duckdb.bak-v{version}"
    monkeypatch.undo()

    ws.catalog_path.write_bytes(ws.catalog_path.read_bytes()[:20_000])  # a crash mid-copy
    proc = cli_inproc(ws.root, "doctor", "--repair")
    assert proc.returncode == 0, proc.stderr
    assert "damaged" in proc.stdout and f"restored {backup}" in proc.stdout
    aside = list(ws.root.glob("catalog.duckdb.broken-*"))
    assert len(aside) == 1  # the damaged file is kept, never deleted
    proc = cli_inproc(ws.root, "datasets")
    assert proc.returncode == 0 and "small" in proc.stdout, proc.stderr
    proc = cli_inproc(ws.root, "doctor", "--repair")
    assert proc.returncode == 0 and ": OK; read all" in proc.stdout, proc.stdout


def test_repair_without_backup_says_what_to_do(catalog, small_json):
    ws = _populated(catalog, small_json)
    ws.catalog_path.write_bytes(b"garbage" * 1000)
    line = one_line_error(cli_inproc(ws.root, "doctor", "--repair"))
    assert "no usable backup" in line and "thresher init" in line


def test_stale_wal_after_a_kill_is_checkpointed_once_and_announced(catalog, small_json):
    ws = catalog.workspace
    proc = run_cli(ws.root, "ingest", str(small_json), fault="kill:catalog.committed")
    assert proc.returncode == -9, proc.stderr  # killed after COMMIT, before any checkpoint
    assert wal_bytes(ws.catalog_path) > 0
    first = cli_inproc(ws.root, "datasets")
    assert first.returncode == 0 and "small" in first.stdout  # the commit survived the kill
    assert "note:" in first.stderr and "write-ahead log" in first.stderr, first.stderr
    assert wal_bytes(ws.catalog_path) == 0
    again = cli_inproc(ws.root, "datasets")
    assert again.returncode == 0 and "write-ahead" not in again.stderr


def test_a_live_wal_of_this_process_is_not_called_stale(catalog, caplog):
    """Two connections of one process (the TUI's threads): the second sees the first's WAL,
    which DuckDB folds in on the last close; that is no crash and gets no note."""
    import logging

    notices = logging.getLogger("thresher.notice")  # the CLI stops its propagation
    notices.addHandler(caplog.handler)
    try:
        with catalog.connect() as first:
            first.execute("CREATE TABLE probe (x INTEGER); INSERT INTO probe VALUES (1)")
            assert wal_bytes(catalog.path) > 0
            with catalog.connect() as second:
                assert second.execute("SELECT x FROM probe").fetchone() == (1,)
            assert "write-ahead" not in caplog.text
        assert wal_bytes(catalog.path) == 0  # the last close checkpointed it
        # Control: the capture does see the note when the checkpoint is called for.
        from store.catalog_health import checkpoint_stale_wal

        with catalog.connect() as con:
            con.execute("INSERT INTO probe VALUES (2)")
            checkpoint_stale_wal(con, catalog.path, wal_bytes(catalog.path))
        assert "write-ahead log left by an interrupted command" in caplog.text
    finally:
        notices.removeHandler(caplog.handler)


def test_replay_note_only_when_no_other_process_holds_the_file(catalog, tmp_path):
    import subprocess
    import sys

    from store.catalog_health import _held_elsewhere

    assert not _held_elsewhere(catalog.path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
         "print('open', flush=True); sys.stdin.read()", str(catalog.path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "open"
        assert _held_elsewhere(catalog.path)  # a live writer's WAL is not "left by a crash"
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert not _held_elsewhere(catalog.path)


def test_debug_adds_the_traceback_before_the_one_line(catalog, monkeypatch):
    catalog.path.write_bytes(b"garbage" * 1000)
    plain = cli_inproc(catalog.workspace.root, "datasets")
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    debug = cli_inproc(catalog.workspace.root, "--debug", "datasets")
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == plain.stderr.strip()
    assert "Traceback" not in cli_inproc(catalog.workspace.root, "datasets").stderr  # not sticky
    monkeypatch.setenv("THRESHER_DEBUG", "1")
    assert "Traceback" in cli_inproc(catalog.workspace.root, "datasets").stderr
