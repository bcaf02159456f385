"""Snapshots of the screens people look at most (home, browser, sample detail) at 80x24 and 160x48.

Deterministic by construction: fixed data, a workspace at a fixed path (the home title shows it),
halfcell images drawn from generated PNGs, no clocks or ages on these screens.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from store.catalog import Catalog
from store.workspace import Workspace
from tests.tui.fake_runs import add_dataset, make_clipper_run, make_ofa_run
from tests.tui.helpers import open_browser, settle, wait_for

SIZES = [(80, 24), (160, 48)]
FIXED_ROOT = Path("/tmp/thresher-snapshot-ws")


@pytest.fixture
def snap_app():
    shutil.rmtree(FIXED_ROOT, ignore_errors=True)
    ws = Workspace(FIXED_ROOT).ensure()
    catalog = Catalog.open(ws)
    add_dataset(catalog)
    make_ofa_run(catalog)
    make_clipper_run(catalog)
    from tui.app import ThresherApp

    yield lambda mode="none": ThresherApp(ws, image_mode=mode)
    shutil.rmtree(FIXED_ROOT, ignore_errors=True)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_home(snap_compare, snap_app, size):
    assert snap_compare(snap_app(), terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_browser(snap_compare, snap_app, size):
    async def run_before(pilot):
        await open_browser(pilot.app, pilot, "ofa-1")
        await pilot.press("down", "space", "k")  # a marked-then-kept row shows the override column
        pilot.app.writer.flush()  # the header says "saved" only once the log has it
        await settle(pilot)

    assert snap_compare(snap_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_sample_detail(snap_compare, snap_app, size):
    async def run_before(pilot):
        await open_browser(pilot.app, pilot, "clipper-1")
        await pilot.press("enter")
        await settle(pilot)
        # the image sizes itself from its laid-out width: wait until it has been drawn at that size
        image = pilot.app.screen.query_one("#sample-image")
        await wait_for(pilot, lambda: image.size.width > 0 and image.size.height > 0, what="image")
        image.refresh(layout=True)
        await settle(pilot)

    assert snap_compare(snap_app("halfcell"), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_start_form(snap_compare, snap_app, size):
    """Sections, one row per field: at 80x24 the method's first parameters are on screen."""

    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)

    assert snap_compare(snap_app(), terminal_size=size, run_before=run_before)
