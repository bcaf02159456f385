"""A job, a TUI-like process and CLI commands share one workspace: no lock error, nothing lost."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from selection.jobs import create_run, spawn_worker
from store import runs
from tests.helpers.jobs import SleepyConfig
from tests.jobs.conftest import wait_for

# What the TUI does: open the catalog for a unit of work (read, append a decision), close, repeat.
TUI_LOOP = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from store.catalog import Catalog
    from store.workspace import Workspace
    catalog = Catalog(Workspace.resolve(sys.argv[1]))
    written = 0
    stop = Path(sys.argv[2])
    while written < 5 or not stop.exists():  # runs until the CLI side is done
        with catalog.transaction() as con:
            con.execute("SELECT count(*) FROM samples").fetchone()
            con.execute(
                "INSERT INTO decisions VALUES (nextval('decision_seq'), 'tui', ?, 'keep', "
                "'sample', 'tester', now(), NULL)",
                [written],
            )
            time.sleep(0.03)  # hold the file a little, as a screen refresh would
        written += 1
        time.sleep(0.01)  # a TUI re-queries on events, not in a spin
    print(written)
    """
)


def test_job_tui_and_cli_at_once(toy, workspace, tmp_path):
    stop = tmp_path / "stop"
    job_dir = create_run(toy, "sleepy", "toy", SleepyConfig(sleep_s=0.15), seed=1, run_id="job")
    spawn_worker(job_dir)
    tui = subprocess.Popen(
        [sys.executable, "-c", TUI_LOOP, str(workspace.root), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cli_runs = []
    for _ in range(3):
        # The CLI: list runs (which registers finished ones) while the TUI hammers the file.
        cli_runs.append(
            subprocess.run(
                [sys.executable, "-m", "tui", "-w", str(workspace.root), "runs"],
                capture_output=True,
                text=True,
                timeout=60,
                env={**os.environ, "COLUMNS": "200"},
            )
        )
        # ...and start another run, which snapshots the input and inserts its row.
        create_run(toy, "sleepy", "toy", SleepyConfig(sleep_s=0), seed=len(cli_runs))
    stop.touch()
    out, err = tui.communicate(timeout=60)
    assert tui.returncode == 0, err
    for proc in cli_runs:
        assert proc.returncode == 0, proc.stderr
        assert "lock" not in (proc.stdout + proc.stderr).lower()
    assert "job" in cli_runs[-1].stdout
    written = int(out)
    assert written >= 5
    wait_for(lambda: runs.read_status(job_dir)["status"] == "done")
    runs.sync_runs(toy)
    with toy.connect() as con:
        assert con.execute("SELECT count(*) FROM decisions WHERE run_id = 'tui'").fetchone() == (
            written,
        )
        rows = dict(con.execute("SELECT run_id, status FROM runs").fetchall())
        assert rows["job"] == "done" and len(rows) == 4
        assert con.execute('SELECT count(*) FROM "run_job_result"').fetchone() == (24,)
