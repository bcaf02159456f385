"""Live data: decisions and runs written by another process reach Home and the browser within a poll;
counts are effective (the algorithm's choice with every override) everywhere."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tui.helpers import decision_rows, open_browser, settle, wait_for
from tui.screens.browser import BrowserScreen
from tui.screens.home import HomeScreen
from tui.widgets.dialogs import ConfirmScreen
from tui.widgets.sample_table import SampleTable

BASE = 1 << 32
REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.anyio


def decide_elsewhere(root: Path, run_id: str, ids: list[int], action: str) -> None:
    """A second process (the CLI's way in) appends to the decision log while the app runs."""
    code = (
        "import sys; from store.catalog import Catalog; from store.workspace import Workspace; "
        "from store.decisions import record; "
        f"record(Catalog(Workspace.resolve(sys.argv[1])), {run_id!r}, {ids!r}, {action!r}, author='other')"
    )
    subprocess.run([sys.executable, "-c", code, str(root)], check=True, cwd=REPO)


def home_selected(app, run_id: str) -> int | None:
    return next(r.selected for r in app.state.runs if r.run_id == run_id)


async def test_decisions_from_another_process_reach_home_and_the_browser(app, runs_ws, catalog):
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, HomeScreen)
        assert home_selected(app, "ofa-1") == 12
        app.open_browser("ofa-1")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, BrowserScreen) and screen.totals[1] == 12
        # rows 0 and 1 are algorithm drops: another process keeps them
        decide_elsewhere(runs_ws.root, "ofa-1", [BASE + 0, BASE + 1], "keep")
        written = time.monotonic()
        await wait_for(pilot, lambda: screen.totals and screen.totals[1] == 14, timeout=10,
                       what="the browser header to count the other process's keeps")  # fmt: skip
        latency = time.monotonic() - written
        await settle(pilot)  # the rows on screen are read again by a worker
        table = screen.query_one(SampleTable)
        assert table.row_at(0).override == "keep" and table.row_at(1).effective
        assert "kept 14 · overrides 2" in str(screen.query_one("#run-header").render())
        await pilot.press("escape")
        await settle(pilot)
        await wait_for(pilot, lambda: home_selected(app, "ofa-1") == 14, what="Home's count")
    # the poll is once a second; allow for a loaded 2-core machine, but not for "never"
    assert latency < 5.0, latency


async def test_home_counts_are_effective_and_match_an_export(app, runs_ws, catalog):
    from store.export import export

    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.open_browser("ofa-1")
        await settle(pilot)
        await pilot.press("down", "d")  # row 1 is an algorithm drop: no change
        await pilot.press("home", "k")  # row 0: keep
        await settle(pilot)
        app.writer.flush()
        await pilot.press("escape")
        await wait_for(pilot, lambda: home_selected(app, "ofa-1") == 13, what="Home's count")
        table = app.screen.query_one("#runs")
        row = table.get_row("ofa-1")
        assert "13" in [str(c) for c in row]
    result = export(catalog, dataset="demo", run_id="ofa-1", selection=None, fmt="ids",
                    out_path=str(runs_ws.exports_dir / "ofa.txt"))  # fmt: skip
    assert result.n_selected == 13


async def test_group_undo_clears_a_dropped_cluster_in_one_step(app, catalog):
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_browser(app, pilot, "ofa-1")
        screen.query_one("#groups").focus()
        await pilot.press("down", "down", "D")  # cluster 1: drop all 15
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert next(g for g in screen.groups if g.key.value == 1).kept == 0
        await pilot.press("U")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        question = str(app.screen.query_one("#confirm-question").render())
        assert "Clear your 15 decisions in cluster=1?" in question
        await pilot.press("y")
        await settle(pilot)
        app.writer.flush()
        cluster1 = next(g for g in screen.groups if g.key.value == 1)
        assert cluster1.kept == cluster1.algo_kept == 3 and cluster1.overrides == 0
        log = decision_rows(catalog, "ofa-1")
        assert [r[1] for r in log] == ["drop"] * 15 + ["clear"] * 15
        assert {r[2] for r in log[15:]} == {"group:cluster=1"}


async def test_group_list_shows_the_grouping_and_end_goes_to_the_last_row(app):
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_browser(app, pilot, "clipper-1")
        groups = screen.query_one("#groups")
        titles = [str(c.label) for c in groups.columns.values()]
        assert titles[0] == "Subset tau=1"
        assert "by Subset tau=1" in str(screen.query_one("#run-header").render())
        await pilot.press("v")
        await settle(pilot)
        assert str(next(iter(groups.columns.values())).label) == "Subset tau=2"
        assert "by Subset tau=2" in str(screen.query_one("#run-header").render())
        groups.focus()
        await pilot.press("end")
        await settle(pilot)
        assert groups.cursor_row == groups.row_count - 1 and groups.scroll_x == 0


async def test_sample_keys_on_the_group_list_say_where_they_work(app, catalog):
    """k/d/u with the group list focused used to do nothing, silently, until Tab."""
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_browser(app, pilot, "ofa-1")
        screen.query_one("#groups").focus()
        await pilot.press("d")
        await settle(pilot)
        assert app.focused is screen.query_one(SampleTable)
        assert any("k / d / u decide the sample" in n.message for n in app._notifications)
        app.writer.flush()
        assert decision_rows(catalog, "ofa-1") == []  # a hint, not a decision
        await pilot.press("d")  # now it decides
        await settle(pilot)
        app.writer.flush()
        assert decision_rows(catalog, "ofa-1") == [(BASE + 0, "drop", "sample")]


async def test_the_palette_offers_group_undo_from_a_cached_run_list(app, monkeypatch):
    from pathlib import Path

    from tui.app import ThresherCommands

    assert (app.workspace.run_dir("ofa-1") / "embeddings").is_dir()  # OFA's: searchable
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.open_browser("ofa-1")
        await settle(pilot)

        def no_disk(*args, **kwargs):
            raise AssertionError("the palette read the run folders")

        monkeypatch.setattr("store.runs.list_runs", no_disk)
        monkeypatch.setattr("tui.data.workspace_view.run_files.list_runs", no_disk)
        with monkeypatch.context() as typing:  # each keystroke lists the commands again
            typing.setattr(Path, "is_dir", no_disk)
            typing.setattr(Path, "exists", no_disk)
            names = [c[0] for c in ThresherCommands(app.screen).commands()]
        assert "search: ofa-1" in names and "search: clipper-1" not in names
        assert "group: undo my decisions in all samples" in names
        assert {"browse: ofa-1", "export: clipper-1", "monitor: ofa-1"} <= set(names)


def test_thresher_runs_shows_the_effective_count(runs_ws, catalog):
    """`thresher runs` said 12 (the algorithm's) after a person kept one more; the TUI said 13."""
    from click.testing import CliRunner

    from store.decisions import record
    from tui.cli import cli

    record(catalog, "ofa-1", [BASE + 0], "keep")
    result = CliRunner().invoke(cli, ["-w", str(runs_ws.root), "runs"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.output.splitlines() if "ofa-1" in ln)
    assert "13/60" in line
    assert "36/60" in next(ln for ln in result.output.splitlines() if "clipper-1" in ln)


def test_a_running_jobs_progress_does_not_reread_the_catalog(runs_ws, monkeypatch):
    """A job writes progress events every second; the poll then read datasets (unnesting every
    sample's flags) and decision seqs again although the catalog had not changed."""
    from store.catalog import Catalog
    from store.decisions import record
    from tui.data.workspace_view import WorkspaceReader

    reader = WorkspaceReader(runs_ws)
    first = reader.read()
    opened: list[int] = []
    real_connect = Catalog.connect

    def connect(self, *args, **kwargs):
        opened.append(1)
        return real_connect(self, *args, **kwargs)

    monkeypatch.setattr(Catalog, "connect", connect)
    with (runs_ws.run_dir("ofa-1") / "progress.jsonl").open("a") as f:
        f.write('{"event": "heartbeat"}\n')  # what a running job appends
    again = reader.read()
    assert opened == [] and again.datasets == first.datasets
    record(Catalog(runs_ws), "ofa-1", [BASE + 0], "drop")  # the catalog changes: read again
    opened.clear()
    changed = reader.read()
    assert opened and changed.decision_seq["ofa-1"] > first.decision_seq.get("ofa-1", 0)


async def test_the_app_reads_the_workspace_once_to_start(app, monkeypatch):
    """The app's first poll and Home's first show both read the whole workspace, at once."""
    from tui.data.workspace_view import WorkspaceReader

    reads: list[int] = []
    real_read = WorkspaceReader.read

    def read(self, *args, **kwargs):
        reads.append(1)
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(WorkspaceReader, "read", read)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, HomeScreen) and app.state.runs
        assert len(reads) == 1
        app.open_browser("ofa-1")
        await settle(pilot)
        app.go_home()  # back on Home: its counts are read again
        await settle(pilot)
        assert len(reads) == 2
