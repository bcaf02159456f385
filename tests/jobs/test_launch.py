"""selection.jobs.start_run / launch: what happened comes back as a Launched, and nothing is printed
(the CLI prints it, the TUI posts it)."""

from __future__ import annotations

from dataclasses import dataclass

from selection.jobs import Launched, launch, start_run
from store import runs
from tests.helpers.jobs import SleepyConfig
from tests.jobs.conftest import wait_for


def test_foreground_then_already_done_then_resumed_says_so_silently(toy, capfd):
    started: list[Launched] = []
    events: list[dict] = []
    first = start_run(toy, "sleepy", "toy", SleepyConfig(sleep_s=0), detach=False, seed=1,
                      on_start=started.append, on_event=events.append)  # fmt: skip
    assert (first.status, first.previous, first.pid) == ("done", "queued", None)
    assert not first.resumed and not first.already_done
    assert [s.status for s in started] == ["running"] and events  # told before, fed during
    again = start_run(toy, "sleepy", "toy", SleepyConfig(sleep_s=0), detach=False, seed=1)
    assert again.run_id == first.run_id and again.already_done and again.status == "done"

    runs.write_status(first.run_dir, "cancelled")  # as a Ctrl-C'd run leaves it
    resumed = launch(toy, first.run_dir, detach=False)
    assert resumed.resumed and (resumed.previous, resumed.status) == ("cancelled", "done")
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # the launcher speaks only through what it returns


def test_detached_launch_returns_the_worker_pid(toy):
    launched = start_run(toy, "sleepy", "toy", SleepyConfig(sleep_s=0), detach=True, name="bg")
    assert launched.detached and launched.status == "queued" and launched.pid > 0
    wait_for(lambda: runs.read_status(launched.run_dir)["status"] == "done", timeout=60)


@dataclass
class _Limited(SleepyConfig):
    limit: int | None = None


def test_a_config_limit_runs_on_a_seeded_subset(toy):
    """What ClipperConfig.limit / EvalConfig.limit mean, for every front end (the TUI form too)."""
    from selection.jobs import register_method

    register_method("sleepy-limited", "tests.helpers.jobs:build_stages",
                    "tests.jobs.test_launch:_Limited")  # fmt: skip
    a = start_run(toy, "sleepy-limited", "toy", _Limited(sleep_s=0, limit=5), detach=False, seed=3)
    b = start_run(toy, "sleepy-limited", "toy", _Limited(sleep_s=0, limit=5), detach=False, seed=4)
    meta = runs.read_run_json(a.run_dir)
    assert meta["subset"]["n"] == 5 and meta["n_input"] == 5
    assert runs.read_run_json(b.run_dir)["subset"] != meta["subset"]  # another seed, another draw
