"""Browser flows: keys -> decision log rows -> effective counts; bulk with confirmation; filters, sort, jump."""

from __future__ import annotations

import pytest

from tests.tui.fake_runs import make_big_run
from tests.tui.helpers import calls_on_ui_thread, decision_rows, open_browser, settle, wait_for
from tui.data.run_view import GroupKey, RunView
from tui.screens.browser import BrowserScreen
from tui.widgets.dialogs import ConfirmScreen
from tui.widgets.sample_table import SampleTable

BASE = 1 << 32
pytestmark = pytest.mark.anyio


def group_row(screen, value):
    return next(g for g in screen.groups if g.key.kind == "group" and g.key.value == value)


async def test_keep_drop_clear_reach_the_log_and_the_counts(app, catalog):
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_browser(app, pilot)
        table = screen.query_one(SampleTable)
        assert app.focused is table
        assert screen.groups[0].kept == 12 and group_row(screen, 0).kept == 3
        # row 0 is cluster 0, algorithm drop -> keep it
        await pilot.press("k")
        await settle(pilot)
        assert group_row(screen, 0).kept == 4 and screen.groups[0].kept == 13
        assert "overrides 1" in str(screen.query_one("#run-header").render())
        # mark rows 1 and 2 (space moves down), drop both as one list decision
        await pilot.press("down", "space", "space", "d")
        await settle(pilot)
        app.writer.flush()
        rows = decision_rows(catalog, "ofa-1")
        assert rows == [
            (BASE + 0, "keep", "sample"),
            (BASE + 1, "drop", "list"),
            (BASE + 2, "drop", "list"),
        ]
        # u clears the override on row 0: back to the algorithm's drop
        await pilot.press("home", "u")
        await settle(pilot)
        app.writer.flush()
        assert decision_rows(catalog, "ofa-1")[-1] == (BASE + 0, "clear", "sample")
        assert table.row_at(0).override is None and table.row_at(0).effective is False
        assert screen.groups[0].kept == 12  # rows 1, 2 were algorithm drops already


async def test_bulk_drop_of_a_cluster_asks_with_the_count(app, catalog):
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_browser(app, pilot)
        groups = screen.query_one("#groups")
        groups.focus()
        await pilot.press("down", "down")  # "all", cluster 0, cluster 1
        await pilot.press("D")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert "Drop all 15 samples of cluster=1?" in str(
            app.screen.query_one("#confirm-question").render()
        )
        await pilot.press("y")
        await settle(pilot)
        app.writer.flush()
        rows = decision_rows(catalog, "ofa-1")
        assert len(rows) == 15 and {r[1] for r in rows} == {"drop"}
        assert {r[2] for r in rows} == {"group:cluster=1"}
        assert group_row(screen, 1).kept == 0 and screen.groups[0].kept == 9


async def test_bulk_declined_writes_nothing(app, catalog):
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_browser(app, pilot)
        screen.query_one("#groups").focus()
        await pilot.press("down", "K")
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        app.writer.flush()
        assert decision_rows(catalog, "ofa-1") == []
        assert isinstance(app.screen, BrowserScreen)


async def test_sort_filter_and_jump(app):
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_browser(app, pilot)
        table = screen.query_one(SampleTable)
        await pilot.press("s")  # confidence ascending
        await settle(pilot)
        confs = [table.row_at(i).scores[0] for i in range(table.view.n_rows)]
        assert confs == sorted(confs) and confs[0] < confs[-1]
        await pilot.press("s")  # confidence descending
        await settle(pilot)
        assert table.row_at(0).scores[0] == max(confs)
        await pilot.press("f")  # kept only
        await settle(pilot)
        assert screen.view.n_rows == 12
        assert all(table.row_at(i).effective for i in range(12))
        await pilot.press("escape")
        await settle(pilot)
        assert screen.view.n_rows == 60
        await pilot.press("g", *"s42", "enter")  # the source id, as the id column shows it
        await settle(pilot)
        assert table.current.sample_id == BASE + 42 and table.current.orig_id == "s42"
        screen.jump_to(str(BASE + 7))  # Thresher's numeric id still works
        await settle(pilot)
        assert table.current.orig_id == "s7"
        screen.jump_to("s999")
        await settle(pilot)
        assert table.current.orig_id == "s7"
        assert any("has no sample 's999'" in n.message for n in app._notifications)
        # text filter through the prompt
        await pilot.press("slash")
        await settle(pilot)
        await pilot.press(*"object 1", "enter")
        await settle(pilot)
        shown = [table.row_at(i).question for i in range(screen.view.n_rows)]
        assert shown and all("object 1" in q for q in shown)
        assert len(shown) == 11  # 1, 10..19


async def test_clipper_groups_and_grouping_switch(app):
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_browser(app, pilot, "clipper-1")
        labels = [g.key for g in screen.groups]
        assert GroupKey("group", "subset_t1", "W_u") in labels
        assert GroupKey("selection", "P1+Wc") in labels
        await pilot.press("v")
        await settle(pilot)
        assert screen.grouping == "subset_t2"
        assert any(g.key.column == "subset_t2" for g in screen.groups)
        # enter on a subset row shows only its samples
        screen.query_one("#groups").focus()
        await pilot.press("down", "enter")
        await settle(pilot)
        assert screen.query_state.group == screen.groups[1].key
        assert screen.view.n_rows == screen.groups[1].size


async def test_a_clipper_header_says_what_decided_the_verdicts(app, runs_ws):
    """The same verdict line as `thresher runs`: a user sees how many replies the judge could
    not decide (counted as not matched) without leaving the workstation."""
    import json

    run_dir = runs_ws.runs_dir / "clipper-1"
    meta = json.loads((run_dir / "run.json").read_text())
    meta["outputs"]["summary"] = "summary.json"
    (run_dir / "run.json").write_text(json.dumps(meta))
    verdicts = {"yesno": {"correct": 7, "wrong": 3}, "undecided": {"undecided": 4}}
    (run_dir / "summary.json").write_text(json.dumps({"verdicts": {"zeroshot": verdicts}}))
    async with app.run_test(size=(160, 40)) as pilot:
        screen = await open_browser(app, pilot, "clipper-1")
        header = str(screen.query_one("#run-header").render())
        assert "judged yesno 10 · undecided 4" in header


async def test_pages_are_read_off_the_ui_thread(app, runs_ws, monkeypatch):
    """Drawing a line used to read its page (a DuckDB query) on the UI thread, so every PgDn
    waited for DuckDB; pages now come from workers and the rows drawn are still the right ones."""
    make_big_run(runs_ws, "big", 1000)
    on_ui = calls_on_ui_thread(monkeypatch, RunView, "page")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_browser(app, pilot, "big")
        table = screen.query_one(SampleTable)
        await pilot.press("pagedown", "pagedown", "pagedown")
        await settle(pilot)
        assert table.cursor > 100 and table.current.orig_id == f"s{table.cursor}"
        # d on a row whose page is still being read is not lost: it applies when the page arrives
        await pilot.press("end", "d")
        await settle(pilot)
        assert table.current.orig_id == "s999" and table.current.override == "drop"
        await pilot.press("s")  # by confidence: pages of the new order, none of the old one
        await settle(pilot)
        confs = [table.row_at(i).scores[0] for i in range(table.size.height)]
        assert confs == sorted(confs)
        assert table.row_at(table.cursor).scores[0] == min(confs)
    assert on_ui and not any(on_ui), f"{sum(on_ui)} of {len(on_ui)} pages read on the UI thread"


@pytest.mark.parametrize(
    ("filter_keys", "then"),
    [
        (["slash", *"object 1", "enter"], ["escape", "d"]),  # filter, Esc clears it, d
        (["slash", *"object 1"], ["escape", "d"]),  # Esc cancels the prompt, d
        # tmux (escape-time, 500 ms by default) and terminals send Esc followed quickly by d as
        # one Meta-d ("\x1bd"): the filter stayed and d did nothing (issue 16's focus report)
        (["slash", *"object 1", "enter"], ["alt+d"]),
        (["slash", *"object 1"], ["alt+d"]),
    ],
    ids=["filter-enter-esc-d", "filter-esc-d", "filter-enter-meta-d", "filter-meta-d"],
)
async def test_escape_then_d_after_a_filter_drops_a_sample(app, catalog, filter_keys, then):
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_browser(app, pilot)
        await pilot.press(*filter_keys)
        await settle(pilot)
        await pilot.press(*then)
        await settle(pilot)
        assert app.screen is screen and app.focused is screen.query_one(SampleTable)
        assert screen.query_state.text == "" and screen.view.n_rows == 60
        app.writer.flush()
        assert [r[1:] for r in decision_rows(catalog, "ofa-1")] == [("drop", "sample")]


async def test_pgdn_to_rows_not_read_yet_keeps_the_screen_until_they_arrive(app, runs_ws):
    """A key that scrolls to rows whose page is not here keeps the old screen until the read
    is done, so one frame shows the new rows (placeholders first cost a second frame)."""
    from tui.widgets.sample_table import PAGE

    make_big_run(runs_ws, "big", 1000)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_browser(app, pilot, "big")
        table = screen.query_one(SampleTable)
        top = 3 * PAGE - table.size.height  # the screen ends where page 3 begins
        table.scroll_to(y=top, animate=False, force=True)
        table.move_to(top)
        await settle(pilot)
        for number in [n for n in table._pages if n not in (1, 2)]:
            del table._pages[number]  # page 3 (read ahead) is not here any more
            table._fresh.discard(number)
        drawn = table.placeholders
        await pilot.press("pagedown")
        await settle(pilot)
        assert table.scroll_offset.y == 3 * PAGE and table.current.orig_id == f"s{3 * PAGE}"
        assert table.placeholders == drawn


async def test_opening_the_browser_reads_each_thing_once(app, monkeypatch):
    """The first show of the browser invalidated what on_mount had just started: the first page
    was read twice (the first answer dropped) and the groups counted twice, beside the load."""
    counted = calls_on_ui_thread(monkeypatch, RunView, "groups")
    read = calls_on_ui_thread(monkeypatch, RunView, "page")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_browser(app, pilot)
        assert len(counted) == 1
        assert len(read) == 2  # from the Parquet files while loading, then from the loaded tables


async def test_a_sort_drops_a_page_read_of_the_old_order(app, runs_ws, monkeypatch):
    """A page of the input order still being read when `s` re-sorts must not land in the table
    (its rows would show at positions of the new order)."""
    import threading

    make_big_run(runs_ws, "big", 1000)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_browser(app, pilot, "big")
        table = screen.query_one(SampleTable)
        reading, go_on = threading.Event(), threading.Event()
        page = RunView.page

        def held_once(self, start: int, count: int):
            if not reading.is_set():
                reading.set()
                go_on.wait(10)
            return page(self, start, count)

        monkeypatch.setattr(RunView, "page", held_once)
        await pilot.press("end")  # page 9 of the input order: its read is held
        await wait_for(pilot, reading.is_set, what="the held read")
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.query_state.sort is not None, what="the sort")
        go_on.set()
        await settle(pilot)
        assert 9 not in table._pages  # the old order's page was dropped
        confs = [table.row_at(i).scores[0] for i in range(table.size.height)]
        assert confs == sorted(confs) and table.cursor == 0
