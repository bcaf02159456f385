"""A damaged or crashed catalog: clear errors, a stale WAL checkpointed, backups, `doctor --repair`.

- A write-ahead log left by a killed command makes every later open replay it (33 s for a large
  re-ingest); the first command after the crash checkpoints it and says so.
- Before each schema migration the catalog is copied to `catalog.duckdb.bak-v<old version>`.
- A catalog file DuckDB cannot read raises CatalogBroken naming the file and the recovery;
  `repair()` (`thresher doctor --repair`) checkpoints a stale WAL, checks every table, and when
  the file is damaged keeps it aside and restores the newest backup.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from pathlib import Path

import duckdb

from store.errors import CatalogBroken, DiskFull, ThresherError
from store.sql import ident

log = logging.getLogger("thresher.notice")
_ANNOUNCE_WAL = 1_000_000  # bytes of WAL worth a note before the (slow) replay
_HEADER_BYTES = 3 * 4096  # DuckDB's main header and two database headers precede the blocks

_BROKEN = (
    "not a valid duckdb database",
    "could not read enough bytes",
    "corrupt",
    "checksum",
    "failed to read",
    "invalid block",
    "database file",
    "serialization error",
    "internal error",
)


def wal_path(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def wal_bytes(path: Path) -> int:
    try:
        return wal_path(path).stat().st_size
    except OSError:
        return 0


def _held_elsewhere(path: Path) -> bool:
    """Whether another process holds DuckDB's lock on the file (a POSIX record lock).

    Only asked while this process has no connection to it: closing the probe's descriptor
    drops every POSIX lock this process holds on the file.
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def announce_replay(path: Path, wal: int) -> None:
    """Before a slow open: say that a large WAL left by a killed command is being replayed."""
    if wal >= _ANNOUNCE_WAL and not _held_elsewhere(path):
        log.warning(
            "%s has a %s write-ahead log left by an interrupted command; replaying it once "
            "(this can take a while)",
            path,
            _size(wal),
        )


def checkpoint_stale_wal(con: duckdb.DuckDBPyConnection, path: Path, seen: int) -> None:
    """Fold a WAL left by a killed command into the file, so later opens do not replay it."""
    if not wal_bytes(path):  # its writer closed cleanly between our look and our open
        return
    t0 = time.perf_counter()
    try:
        con.execute("CHECKPOINT")
    except duckdb.Error:
        return  # another connection of this process is mid-transaction: it checkpoints later
    log.warning(
        "%s had a %s write-ahead log left by an interrupted command; checkpointed it in %.1f s "
        "(later commands open it fast again)",
        path,
        _size(seen),
        time.perf_counter() - t0,
    )


# What every "the catalog file is damaged" error says to do.
_REPAIR = (
    "the catalog file is damaged. Run `thresher doctor --repair`: it keeps the damaged file "
    "aside and restores the backup made before the last schema upgrade"
)


def broken_error(path: Path, exc: BaseException) -> ThresherError | None:
    """The user error for a DuckDB error that means the catalog file is damaged or the disk full."""
    text = str(exc)
    low = text.lower()
    if str(path) not in text and path.name not in text:
        return None
    if "no space left" in low or "could not write all bytes" in low:
        return DiskFull(
            f"no space left on the device while writing {path}; nothing was committed. Free some "
            "space (`df -h` shows where) and run the same command again."
        )
    if not any(s in low for s in _BROKEN):
        return None
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return CatalogBroken(
        f"{path} cannot be read ({first[:160]}): {_REPAIR} (or checkpoints a stale write-ahead "
        "log). Run folders under runs/ are not affected."
    )


def check_size(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Raise CatalogBroken when the file is shorter than its own header says (a truncated copy).

    DuckDB reads blocks lazily, so half a file would otherwise pass for whole until some
    command happens to touch a missing block. Skipped while a WAL is pending (blocks it adds are
    not on disk yet).
    """
    if wal_bytes(path):
        return
    row = con.execute("SELECT block_size, used_blocks FROM pragma_database_size()").fetchone()
    if not row:
        return
    # Free blocks at the end may be cut off the file; every used block must be in it.
    expected = _HEADER_BYTES + int(row[0]) * int(row[1])
    actual = path.stat().st_size
    if actual < expected:
        raise CatalogBroken(
            f"{path} is truncated ({actual:,} of {expected:,} bytes): {_REPAIR}. Run folders "
            "under runs/ are not affected."
        )


def backups(path: Path) -> list[Path]:
    """Backups made before schema migrations, newest schema version first."""

    def version(p: Path) -> int:
        tail = p.name.rsplit("bak-v", 1)[-1]
        return int(tail) if tail.isdigit() else -1

    found = [p for p in path.parent.glob(path.name + ".bak-v*") if version(p) >= 0]
    return sorted(found, key=version, reverse=True)


def backup_before_migration(path: Path, version: int) -> Path:
    """Copy the (checkpointed) catalog to `<name>.bak-v<version>` before migrating it."""
    dst = path.with_name(f"{path.name}.bak-v{version}")
    tmp = dst.with_name(f".{dst.name}.tmp")
    try:
        shutil.copy2(path, tmp)
        tmp.replace(dst)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ThresherError(
            f"cannot back up {path} to {dst} before upgrading its schema ({exc.strerror or exc}); "
            "nothing was changed. Free some space or fix the folder's permissions, then retry."
        ) from None
    log.warning(
        "backed up %s to %s before upgrading its schema from version %d", path, dst, version
    )
    return dst


def check(path: Path) -> list[str]:
    """Open the catalog, checkpoint a stale WAL and read every row of every table; raises on damage."""
    notes = []
    wal = wal_bytes(path)
    con = duckdb.connect(str(path))
    try:
        if wal:
            con.execute("CHECKPOINT")
            notes.append(f"checkpointed a stale {_size(wal)} write-ahead log")
        check_size(con, path)
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_type = 'BASE TABLE' AND table_schema = 'main' ORDER BY 1"
            ).fetchall()
        ]
        rows = 0
        for table in tables:
            count = con.execute(f"SELECT count(*), sum(hash(t)) FROM {ident(table)} t").fetchone()
            rows += count[0] if count else 0
        notes.append(f"read all {rows:,} rows of {len(tables)} tables")
    finally:
        con.close()
    return notes


def repair(path: Path) -> list[str]:
    """What `thresher doctor --repair` did, one line each; raises CatalogBroken when it cannot."""
    if not path.exists():
        return [f"no catalog at {path}; `thresher init` creates one"]
    try:
        return [f"{path}: OK; " + "; ".join(check(path))]
    except (duckdb.Error, CatalogBroken) as exc:
        damage = str(exc).strip().splitlines()[0].split(": the catalog file is damaged")[0]
        damage = damage.removeprefix(f"{path} ")[:160]
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = path.with_name(f"{path.name}.broken-{stamp}")
    path.replace(aside)
    if wal_path(path).exists():
        wal_path(path).replace(aside.with_name(aside.name + ".wal"))
    out = [f"{path} is damaged ({damage}); kept it as {aside}"]
    for backup in backups(path):
        shutil.copy2(backup, path)
        try:
            notes = check(path)
        except (duckdb.Error, CatalogBroken):
            path.unlink(missing_ok=True)
            out.append(f"backup {backup} is damaged too; skipped it")
            continue
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(backup.stat().st_mtime))
        out.append(f"restored {backup} (made {when}, before a schema upgrade); " + "; ".join(notes))
        out.append(
            "ingests, decisions and exports made after that time are not in it: re-ingest those "
            "datasets and redo those decisions (`thresher runs` still lists run folders)"
        )
        return out
    raise CatalogBroken(
        "; ".join(out) + f". There is no usable backup ({path.name}.bak-v*): run `thresher init` "
        "for a fresh catalog and ingest your datasets again; run folders under runs/ are intact."
    )


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n:,} bytes"
