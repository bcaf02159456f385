"""Search, thumbnail grid and dataset view, driven through Pilot over the fake runs (real Parquet,
real PNGs, real catalog), with decisions and tags read back from the catalog."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tui.helpers import (
    calls_on_ui_thread,
    decision_rows,
    open_browser,
    opened,
    settle,
    wait_for,
    widget_text,
)
from tui.data.run_view import RunView
from tui.screens.dataset import DatasetScreen
from tui.screens.grid import GridScreen, TileView
from tui.screens.search import SearchScreen
from tui.widgets.dialogs import ConfirmScreen, PromptScreen

pytestmark = pytest.mark.anyio


def _nearest(runs_ws, row: int, k: int) -> list[int]:
    emb = np.load(runs_ws.run_dir("ofa-1") / "embeddings" / "part-00000.npy").astype(np.float64)
    sims = emb @ emb[row]
    sims[row] = -np.inf
    return [int(i) for i in np.argsort(-sims)[:k]]


async def test_more_like_this_then_bulk_keep_and_drop(app, runs_ws, monkeypatch):
    sid0 = (1 << 32) + 0
    applied_on_ui = calls_on_ui_thread(monkeypatch, RunView, "apply")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await opened(pilot, lambda: app.open_search("ofa-1", like=sid0), SearchScreen)
        await wait_for(pilot, lambda: screen.result is not None, what="search result")
        rows = [r.hit.row for r in screen.rows]
        assert 0 not in rows and len(rows) == 50  # top 50 of the 59 other samples, best first
        assert rows[:5] == _nearest(runs_ws, 0, 5)
        await pilot.press("space", "space", "d")  # mark the two best, drop them
        await settle(pilot)
        app.writer.flush()
        logged = decision_rows(app.catalog, "ofa-1")
        assert {r[0] for r in logged} == {(1 << 32) + r for r in rows[:2]}
        assert {r[1:] for r in logged} == {("drop", "list")}
        assert [screen.rows[i].override for i in range(3)] == ["drop", "drop", None]
        await pilot.press("K")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        app.writer.flush()
        assert len(decision_rows(app.catalog, "ofa-1")) == 2 + len(rows)
        assert all(r.override == "keep" for r in screen.rows)
        await pilot.press("t")  # tag the focused result
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*"dup", "enter")
        focused = screen.current
        await wait_for(pilot, lambda: focused.hit.row in {r.hit.row for r in screen.rows if r.tags})
        assert [r.tags for r in screen.rows if r.tags] == [("dup",)]
        tagged = next(i for i, r in enumerate(screen.rows) if r.tags)
        assert "dup" in screen.query_one("#search-results").get_row_at(tagged)  # the tags column
        # "more like" the focused result starts a new search from it
        await pilot.press("m")
        await wait_for(pilot, lambda: screen.result.query != f"like:{sid0}", what="second search")
        assert screen.result.query == f"like:{(1 << 32) + rows[2]}"  # the cursor's row
    assert applied_on_ui == [False, False]  # the applier's thread, not the UI's


async def test_text_search_on_a_run_without_an_encoder_says_why(app):
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await opened(pilot, lambda: app.open_search("ofa-1"), SearchScreen)
        await pilot.press(*"cats", "enter")
        status_label = screen.query_one("#search-status")
        await wait_for(pilot, lambda: "failed" in widget_text(status_label), what="the error")
        status = widget_text(status_label)
        assert "search failed" in status and "records no CLIP encoder" in status


async def test_grid_pages_thumbnails_and_decides(app, monkeypatch):
    app.image_mode = "halfcell"
    applied_on_ui = calls_on_ui_thread(monkeypatch, RunView, "apply")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        view = app.view("ofa-1")
        app.open_grid(view, list(range(20)), "first 20")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, GridScreen)
        await wait_for(pilot, lambda: screen.page == 0, what="first page")
        per = screen.per_page
        assert screen.cols == 4 and per >= 4  # 100 columns hold four 22-cell tiles
        cells = list(screen.query(TileView))
        assert len(cells) == per
        first = cells[0].plain()
        assert "▀" in first and "s0" in first  # a real thumbnail of a real PNG, its id
        assert screen.paint_ms is not None
        await pilot.press("right", "k")
        await settle(pilot)
        app.writer.flush()
        assert decision_rows(app.catalog, "ofa-1") == [((1 << 32) + 1, "keep", "sample")]
        assert screen.tiles[1].decision == "KEEP"
        await pilot.press("space", "space", "d")  # mark rows 1 and 2, drop both at once
        await settle(pilot)
        app.writer.flush()
        base = 1 << 32
        assert decision_rows(app.catalog, "ofa-1")[1:] == [
            (base + 1, "drop", "list"),
            (base + 2, "drop", "list"),
        ]
        assert [t.decision for t in screen.tiles[1:3]] == ["DROP", "DROP"] and not screen.marked
        await pilot.press("pagedown")
        await wait_for(pilot, lambda: screen.page == 1, what="second page")
        assert screen.tiles[0].rid == per
        # tiles of samples whose image is missing say so instead of failing
        assert any("missing" in c.plain() for c in screen.query(TileView))
    assert applied_on_ui == [False, False]  # the applier's thread, not the UI's


async def test_dataset_view_filters_counts_and_tags(app):
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await opened(pilot, lambda: app.open_dataset("demo"), DatasetScreen)
        await wait_for(pilot, lambda: screen.counts is not None, what="counts")
        assert screen.counts.total == 60 and screen.counts.flags == {"missing_image": 52}
        assert len(screen.lines) == 60
        await pilot.press("f")  # the first flag: missing_image
        await wait_for(pilot, lambda: screen.counts.matching == 52, what="flag filter")
        await pilot.press("f")  # (clean)
        await wait_for(pilot, lambda: screen.counts.matching == 8, what="clean filter")
        assert all(not line.flags for line in screen.lines)
        await pilot.press("space", "space", "a")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*"chart", "enter")
        await settle(pilot)
        await wait_for(pilot, lambda: screen.counts.tags == {"chart": 2}, what="tags counted")
        assert [line.tags for line in screen.lines[:3]] == [["chart"], ["chart"], []]
        await pilot.press("escape")  # clear the filters
        await wait_for(pilot, lambda: screen.counts.matching == 60, what="filters cleared")
        await pilot.press("T")  # tag filter: chart
        await wait_for(pilot, lambda: screen.counts.matching == 2, what="tag filter")
        await pilot.press("slash")
        await pilot.press(*"object 1", "enter")  # "object 1?" and "object 1x?": text AND tag
        await wait_for(pilot, lambda: screen.filters.text == "object 1", what="text filter")
        await settle(pilot)
        assert [line.orig_id for line in screen.lines] == ["s1"]
        text = widget_text(screen.query_one("#dataset-counts"))
        assert "missing_image" in text and "chart" in text


async def test_browser_keys_open_grid_and_more_like_this(app, monkeypatch):
    async with app.run_test(size=(120, 40)) as pilot:
        await open_browser(app, pilot)
        on_ui = calls_on_ui_thread(monkeypatch, RunView, "page")
        await pilot.press("G")
        await settle(pilot)
        grid = app.screen
        assert isinstance(grid, GridScreen) and grid.rids == list(range(60))
        assert on_ui and not any(on_ui)  # the grid's rows were read off the UI thread
        await pilot.press("escape", "down", "L")
        await settle(pilot)
        search = app.screen
        assert isinstance(search, SearchScreen)
        await wait_for(pilot, lambda: search.result is not None, what="search result")
        assert search.result.query == f"like:{(1 << 32) + 1}"  # the browser's focused row


async def test_plots_of_ofa_clipper_and_the_overlap_matrix(app):
    from tui.screens.plots import PlotsScreen

    async with app.run_test(size=(120, 40)) as pilot:
        screen = await opened(pilot, lambda: app.open_plots(["ofa-1"]), PlotsScreen)
        await wait_for(pilot, lambda: screen.data is not None, what="ofa plots")
        cs = screen.data.clusters
        # fake OFA run: cluster = i % 4, 15 members each, the 3 least confident kept
        assert cs.ids == [0, 1, 2, 3] and cs.kept == [3] * 4 and cs.dropped == [12] * 4
        assert cs.cut[0] == pytest.approx(0.99 - 14 * 0.01 + 2 * 0.01)  # 3rd lowest of cluster 0
        points, clusters = screen.data.pca
        assert points.shape == (60, 2) and sorted(set(clusters.tolist())) == [0, 1, 2, 3]
        text = widget_text(screen.query_one("#plots"))
        assert "cluster 0: confidence (15 samples, cut 0.870)" in text and "kept / dropped" in text
        await pilot.press("right_square_bracket")
        assert "cluster 1: confidence" in widget_text(screen.query_one("#plots"))
        await pilot.press("escape")

        screen = await opened(pilot, lambda: app.open_plots(["clipper-1"]), PlotsScreen)
        await wait_for(pilot, lambda: screen.data is not None, what="clipper plots")
        d = screen.data
        assert d.subsets["subset_t1"] == {s: 12 for s in ("P", "P_not", "W_c", "W_u", "unprobed")}
        assert d.c_p.tolist() == [1, 1, 1]  # each demonstration fixed one of its two queries
        assert set(d.ppl) == {"P", "P_not", "W_c", "W_u", "unprobed"}
        text = widget_text(screen.query_one("#plots"))
        assert "CLIPPER subsets per tau" in text and "c(p)" in text
        await pilot.press("escape")

        app.open_compare(["ofa-1", "clipper-1"])
        await settle(pilot)
        await pilot.press("p")  # from Compare: the same runs' overlap matrix
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, PlotsScreen) and len(screen.views) == 2
        await wait_for(pilot, lambda: screen.overlap is not None, what="overlap")
        names, matrix = screen.overlap
        assert "full" in names and matrix.shape == (len(names), len(names))
        assert "Overlap (Jaccard)" in widget_text(screen.query_one("#plots"))


async def test_enter_on_a_home_dataset_opens_the_dataset_view(app):
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await wait_for(pilot, lambda: len(app.state.datasets) == 1, what="workspace poll")
        await settle(pilot)
        app.screen.query_one("#datasets").focus()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, DatasetScreen) and app.screen.dataset_name == "demo"
