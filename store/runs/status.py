"""A run's status and liveness: status.json, the run lock a live job holds, its PID, cancel requests."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from store.errors import ThresherError
from store.redact import redact
from store.runs.layout import (
    CANCEL,
    INTERRUPTED,
    LOCK,
    PID,
    RUN_JSON,
    STATUS,
    STATUSES,
    write_json_atomic,
)


@contextlib.contextmanager
def creating_run_folder(runs_dir: Path, run_id: str) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Build a run folder under a temporary name, then publish it whole and register it.

    The caller fills the yielded folder and the `meta` dict (run.json), which starts with the
    run id, the creation time (UTC) and Thresher's version. On success run.json and a
    queued status are written, the folder is renamed into place (it appears complete or not at
    all; a concurrent creator of the same id loses at the rename) and the catalog row is the
    caller's to insert with `insert_run_row`. Any exception removes the temporary folder.
    """
    import shutil

    runs_dir.mkdir(parents=True, exist_ok=True)
    tmp = runs_dir / f".{run_id}.creating-{os.getpid()}"
    tmp.mkdir()
    meta: dict[str, Any] = {
        "run_id": run_id,
        "created_at": datetime.now(timezone.utc).replace(tzinfo=None).isoformat("T", "seconds"),
        "thresher_version": _thresher_version(),
    }
    try:
        yield tmp, meta
        write_json_atomic(tmp / RUN_JSON, meta)
        write_status(tmp, "queued")
        os.rename(tmp, runs_dir / run_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _thresher_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("thresher")
    except PackageNotFoundError:
        return "0+unknown"


def write_status(run_dir: Path, status: str, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into status.json and set `status`; atomic."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    current = _read_status_file(run_dir)
    current.update(fields)
    if current.get("error"):
        current["error"] = redact(current["error"])  # a server may have echoed a key into it
    current["status"] = status
    current["updated_at"] = time.time()
    write_json_atomic(run_dir / STATUS, current)
    return current


def _read_status_file(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / STATUS).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


@contextlib.contextmanager
def hold_run_lock(run_dir: Path, wait_s: float = 0.25) -> Iterator[None]:
    """Exclusive lock a job holds while it runs; the kernel drops it when the process dies (even kill -9)."""
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # A reader probing liveness holds it for microseconds; a real job holds it for good.
                if time.monotonic() >= deadline:
                    pid = _read_status_file(run_dir).get("pid")
                    raise ThresherError(
                        f"run {run_dir.name} is already running (PID {pid}); "
                        f"`thresher attach {run_dir.name}` to watch it or "
                        f"`thresher cancel {run_dir.name}` to stop it."
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def is_locked(run_dir: Path) -> bool:
    """True while some process holds the run's lock, i.e. a job is alive on this folder."""
    path = run_dir / LOCK
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def pid_alive(pid: int | None) -> bool:
    """A live, non-zombie process with this PID."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def read_status(run_dir: Path) -> dict[str, Any]:
    """status.json as the job wrote it, with `status` = "interrupted" when the job died mid-run."""
    status = _read_status_file(run_dir)
    status.setdefault("status", "queued")
    if status["status"] == "running" and not is_locked(run_dir):
        status["status"] = INTERRUPTED
    elif status["status"] == "queued":
        # A detached launch writes job.pid before the worker takes the lock.
        pid = _read_pid(run_dir)
        if pid and not pid_alive(pid) and not is_locked(run_dir):
            status["status"] = INTERRUPTED
    return status


def _read_pid(run_dir: Path) -> int | None:
    try:
        return int((run_dir / PID).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def request_cancel(run_dir: Path) -> int | None:
    """Ask a job to stop after its current shard: a flag file it polls, plus SIGTERM if it is alive."""
    (run_dir / CANCEL).write_text(f"{time.time()}\n")
    pid = read_status(run_dir).get("pid") or _read_pid(run_dir)
    if pid and is_locked(run_dir) and pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 15)
        return pid
    return None
