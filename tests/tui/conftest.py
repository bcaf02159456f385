"""Fixtures for the workstation tests: a workspace with a dataset, an OFA-like and a CLIPPER-like run."""

from __future__ import annotations

import pytest

from tests.tui.fake_runs import add_dataset, make_clipper_run, make_ofa_run


@pytest.fixture
def runs_ws(workspace, catalog):
    add_dataset(catalog)
    make_ofa_run(catalog)
    make_clipper_run(catalog)
    return workspace


@pytest.fixture
def app(runs_ws):
    from tui.app import ThresherApp

    return ThresherApp(runs_ws, image_mode="none")


@pytest.fixture
def anyio_backend():
    """Pilot tests are coroutines; anyio's pytest plugin (installed with httpx) runs them on asyncio."""
    return "asyncio"
