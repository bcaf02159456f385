"""Export from the TUI writes the manifest with the user's overrides; the detail screen shows text, scores, probes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tui.helpers import open_browser, settle, wait_for, widget_text
from tui.screens.detail import DetailScreen
from tui.screens.export import ExportScreen
from tui.widgets.sample_table import SampleTable

pytestmark = pytest.mark.anyio
BASE = 1 << 32


async def test_export_from_the_tui_writes_the_file_with_overrides(app, runs_ws):
    async with app.run_test(size=(120, 40)) as pilot:
        await open_browser(app, pilot)
        # keep the first four samples (the only ones with images besides 4..7); rows 0-3
        await pilot.press("space", "space", "space", "space", "k")
        await settle(pilot)
        await pilot.press("x")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ExportScreen)
        # the name `thresher export --run ofa-1` picks (it differed: ofa-1-default.json)
        out = runs_ws.exports_dir / "demo-ofa-1-default-llava.json"
        assert screen.query_one("#path").value == str(out)
        await pilot.press("ctrl+e")
        await wait_for(pilot, lambda: screen.result is not None or "failed" in widget_text(
            screen.query_one("#export-result")), what="the export")  # fmt: skip
        text = widget_text(screen.query_one("#export-result"))
        assert screen.result is not None, text
        manifest = json.loads(Path(out).read_text())
        assert sorted(r["id"] for r in manifest) == ["s0", "s1", "s2", "s3"]
        assert screen.result.n_selected == 16  # 12 by the algorithm + 4 overrides
        assert "4 samples exported of 16 selected" in text
        assert "missing_image 12" in text
        assert Path(screen.result.sidecar_path).exists()


async def test_detail_shows_conversation_scores_and_probe_history(app):
    async with app.run_test(size=(120, 40)) as pilot:
        await open_browser(app, pilot, "clipper-1")
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DetailScreen)
        text = widget_text(screen.query_one("#detail-body"))
        assert "What colour is object 0?" in text and "assistant: red" in text
        assert "subset_t1: P" in text and "log_ppl: 1.0000" in text
        assert "response: guess 0" in text and "judged correct (P)" in text
        assert text.startswith("sample s0 ") and "query s2: yes" in text and "query s3: no" in text
        assert str(1 << 32) not in text  # one id: the source id, as in the data and the exports
        # a decision from the detail screen goes to the log too
        await pilot.press("d")
        await settle(pilot)
        app.writer.flush()
        with app.catalog.connect() as con:
            rows = con.execute("SELECT sample_id, action FROM decisions").fetchall()
        assert rows == [(BASE, "drop")]
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen.query_one(SampleTable).row_at(0).override == "drop"


async def test_detail_of_an_ofa_sample_lists_cluster_neighbours(app):
    async with app.run_test(size=(120, 40)) as pilot:
        await open_browser(app, pilot)
        await pilot.press("down", "enter")
        await settle(pilot)
        screen = app.screen
        assert screen.detail.neighbours and len(screen.detail.neighbours) == 5
        # neighbours are members of the same cluster (cluster = ordinal % 4)
        assert all((sid - BASE) % 4 == 1 for sid, _ in screen.detail.neighbours)
        sims = [s for _, s in screen.detail.neighbours]
        assert sims == sorted(sims, reverse=True)
        assert "Nearest in its cluster" in widget_text(screen.query_one("#detail-body"))
