"""Fixtures for the job runner tests: a catalog with a small dataset and the `sleepy` method."""

from __future__ import annotations

import hashlib

import pytest

import tests.helpers.jobs as sleepy


@pytest.fixture(autouse=True)
def _stop_leftover_jobs(workspace):
    """A failed test must not leave a detached job behind: kill, by PID, the ones it started."""
    yield
    import os
    import signal

    from store import runs

    for pid_file in workspace.runs_dir.glob("*/" + runs.PID):
        run_dir = pid_file.parent
        pid = int(pid_file.read_text())
        if runs.is_locked(run_dir) and runs.pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def toy(catalog):
    """A catalog holding dataset `toy` (24 samples)."""
    sleepy.make_dataset(catalog, "toy", 24)
    return catalog


def shard_hashes(run_dir) -> dict[str, str]:
    """sha256 of every shard file of a run, keyed by its path inside the run."""
    out = {}
    for path in sorted(run_dir.glob("*/part-*")):
        out[str(path.relative_to(run_dir))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def wait_for(predicate, timeout: float = 15.0, every: float = 0.02):
    """Poll until `predicate()` is truthy; fails the test after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(every)


def n_shards(run_dir, stage: str = "score") -> int:
    return len(list((run_dir / stage).glob("part-*.parquet")))
