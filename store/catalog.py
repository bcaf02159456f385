"""The DuckDB catalog: short-lived connections with bounded retry, so a job, the TUI and the CLI share it.

DuckDB lets one process hold a file at a time (not even read-only beside a writer). Thresher's rule:
jobs never open the catalog; everyone else opens it for one unit of work and closes it. A second
process that finds it locked retries with backoff for up to `busy_timeout` seconds before giving up
with a message that names the holder.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from store import catalog_health as health
from store import faults
from store.errors import CatalogBusy, ThresherError
from store.schema import MIGRATIONS, SCHEMA_VERSION
from store.workspace import Workspace

DEFAULT_BUSY_TIMEOUT = 30.0
_LIVE: dict[str, int] = {}  # open connections per catalog file in this process
_LIVE_LOCK = threading.Lock()


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "could not set lock" in text or "conflicting lock" in text


class Catalog:
    def __init__(self, workspace: Workspace, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self.workspace = workspace
        self.path: Path = workspace.catalog_path
        self.busy_timeout = busy_timeout

    @classmethod
    def open(cls, workspace: Workspace, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Catalog:
        """Create the workspace and catalog if needed and bring the schema up to date."""
        workspace.ensure()
        catalog = cls(workspace, busy_timeout)
        catalog.migrate()
        return catalog

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One connection for one unit of work; waits (bounded) while another process holds the file.

        A catalog file that cannot be read (here or halfway through the work) raises
        CatalogBroken, which names the file and `thresher doctor --repair`.
        """
        con = self._connect_with_retry()
        key = str(self.path)
        with _LIVE_LOCK:
            _LIVE[key] = _LIVE.get(key, 0) + 1
        try:
            yield con
        except duckdb.Error as exc:
            broken = health.broken_error(self.path, exc)
            if broken is None:
                raise
            raise broken from exc
        finally:
            with _LIVE_LOCK:
                _LIVE[key] -= 1
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection inside BEGIN/COMMIT: any exception rolls the whole unit back."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            faults.point("catalog.commit", self.path)
            con.execute("COMMIT")
            faults.point("catalog.committed", self.path)

    def _connect_with_retry(self) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.02
        announced = False
        while True:
            try:
                # A WAL is stale only when no connection of this process has the file open
                # (other processes cannot: DuckDB's lock); DuckDB folds it in on its last close.
                wal = 0 if _LIVE.get(str(self.path)) else health.wal_bytes(self.path)
                if wal and not announced:
                    health.announce_replay(self.path, wal)
                    announced = True
                con = duckdb.connect(str(self.path))
                if wal:
                    health.checkpoint_stale_wal(con, self.path, wal)
                return con
            except duckdb.Error as exc:
                if not _is_lock_error(exc):
                    broken = health.broken_error(self.path, exc)
                    if broken is None:
                        raise
                    raise broken from exc
                if time.monotonic() >= deadline:
                    pid = re.search(r"PID (\d+)", str(exc))
                    holder = f"process {pid.group(1)}" if pid else "another process"
                    raise CatalogBusy(
                        f"{self.path} is held by {holder} for longer than {self.busy_timeout:.0f}s. "
                        "Thresher jobs never hold it; close the other thresher command (or the "
                        "open workstation) and try again."
                    ) from exc
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.5)

    def schema_version(self, con: duckdb.DuckDBPyConnection) -> int:
        has_meta = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'"
        ).fetchone()
        if not has_meta or not has_meta[0]:
            return 0
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def migrate(self) -> int:
        """Apply the migrations this file has not seen yet, each in its own transaction."""
        with self.connect() as con:
            current = self.schema_version(con)
            if current and _LIVE.get(str(self.path), 0) <= 1:  # no other writer mid-checkpoint
                health.check_size(con, self.path)
            if current > SCHEMA_VERSION:
                raise ThresherError(
                    f"{self.path} has schema version {current}, newer than this Thresher "
                    f"({SCHEMA_VERSION}); upgrade Thresher."
                )
            if 0 < current < SCHEMA_VERSION:
                con.execute("CHECKPOINT")  # the backup must hold every committed change
                health.backup_before_migration(self.path, current)
            for version in range(current, SCHEMA_VERSION):
                con.execute("BEGIN TRANSACTION")
                con.execute(MIGRATIONS[version])
                con.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(version + 1)]
                )
                con.execute("COMMIT")
            return SCHEMA_VERSION
