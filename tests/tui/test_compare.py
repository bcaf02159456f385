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
