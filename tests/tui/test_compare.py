"""Compare screen: selections of an OFA-like and a CLIPPER-like run side by side, overrides included."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tui.helpers import settle, widget_text
from tui.screens.compare import CompareScreen

pytestmark = pytest.mark.anyio


async def test_compare_sizes_overlap_histograms_and_coverage(app):
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        app.open_browser("ofa-1")
        await settle(pilot)
        await pilot.press("k")  # row 0 (cluster 0) joins the OFA selection: 13 samples
        await settle(pilot)
        app.open_compare(["ofa-1", "clipper-1"])
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        c = screen.comparison
        sizes = {s.name: len(s.ids) for s in c.selections}
        assert sizes["full"] == 60 and sizes["ofa-1:default*"] == 13
        assert sizes["clipper-1:default*"] == 36 and sizes["clipper-1:P1+Wc"] == 24
        names = [s.name for s in c.selections]
        i, j = names.index("ofa-1:default*"), names.index("clipper-1:default*")
        a, b = set(c.selections[i].ids), set(c.selections[j].ids)
        assert c.jaccard[i, j] == pytest.approx(len(a & b) / len(a | b))
        assert np.allclose(np.diag(c.jaccard), 1.0)
        assert c.jaccard[names.index("full"), j] == pytest.approx(36 / 60)
        # every selection's histogram counts exactly its members (all samples have log_ppl)
        assert all(int(c.ppl_hist[s.name].sum()) == len(s.ids) for s in c.selections)
        assert c.coverage["ofa-1:default*"] == (4, 4) and c.coverage["full"] == (4, 4)
        text = widget_text(screen.query_one("#compare-table"))
        assert "Jaccard overlap" in text and "log perplexity histogram" in text
        assert "no evaluations in the catalog yet" in text or "Fine-tune evaluations" in text


async def test_compare_with_samples_left_out_of_clustering(workspace, catalog):
    """OFA writes cluster NULL for samples it excluded; compare used to hang on "computing…"."""
    from tests.tui.fake_runs import add_dataset, make_ofa_run
    from tui.app import ThresherApp

    add_dataset(catalog)
    make_ofa_run(catalog, n_excluded=8)
    app = ThresherApp(workspace, image_mode="none")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.open_compare(["ofa-1"])
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen) and screen.comparison is not None
        # 4 clusters among the 52 clustered samples; the 8 left out count towards none
        assert screen.comparison.coverage["full"] == (4, 4)
        assert "computing" not in widget_text(screen.query_one("#compare-table"))


async def test_a_failing_worker_is_reported_and_the_screen_stays_usable(app, monkeypatch):
    """One error path: the exception reaches a notification and the placeholder, not a silent log."""
    import tui.screens.compare as compare_screen

    def broken(views, catalog=None):
        raise TypeError("'<' not supported between instances of 'NoneType' and 'int'")

    monkeypatch.setattr(compare_screen, "compare", broken)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.open_compare(["ofa-1"])
        await settle(pilot)
        screen = app.screen
        text = widget_text(screen.query_one("#compare-table"))
        assert "could not compare: TypeError: '<' not supported" in text
        notes = [n.message for n in app._notifications]
        assert any("compare failed: TypeError" in m for m in notes), notes
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, CompareScreen)
