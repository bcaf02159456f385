"""RunView on its own: what the screens rely on when threads share one run."""

from __future__ import annotations

import threading

import pytest

from tui.data import run_view
from tui.data.run_view import Query, RunView


def test_close_waits_for_an_ordering_being_written(runs_ws, monkeypatch):
    """The app closes runs on quit (and evicts idle ones) while a worker may still be writing a
    sort's ordering on its own cursor: close() pulled the connection from under it (DuckDB
    "connection is busy" when the query was running; a traceback on quit right after a sort)."""
    view = RunView(runs_ws, "ofa-1")
    view.set_query(Query(sort="confidence"))
    writing, go_on = threading.Event(), threading.Event()
    real = run_view.rows

    def held(con, sql, params=None):
        if sql.startswith("CREATE TABLE ord_"):
            writing.set()
            go_on.wait(10)
        return real(con, sql, params)

    monkeypatch.setattr(run_view, "rows", held)
    errors: list[BaseException] = []

    def materialize() -> None:
        try:
            view.materialize()
        except BaseException as exc:  # noqa: BLE001 -- the test reports it
            errors.append(exc)

    writer = threading.Thread(target=materialize)
    writer.start()
    assert writing.wait(10)
    closer = threading.Thread(target=view.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()  # waits for the ordering
    go_on.set()
    writer.join(10)
    closer.join(10)
    assert not closer.is_alive() and not errors, errors


@pytest.mark.anyio
async def test_the_app_closes_idle_runs_off_the_ui_thread(app, monkeypatch):
    """Evicting an idle run closes its view, which waits for an ordering being written (up to
    ~0.5 s at 1M rows): that wait ran on the UI thread."""
    from tests.tui.helpers import settle
    from tui import app as app_module

    monkeypatch.setattr(app_module, "MAX_VIEWS", 0)  # every run off screen is idle at once
    closed_on: list[bool] = []
    real_close = RunView.close

    def close(self):
        closed_on.append(threading.current_thread() is threading.main_thread())
        real_close(self)

    monkeypatch.setattr(RunView, "close", close)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        app.open_browser("ofa-1")
        await settle(pilot)
        app.go_home()
        await settle(pilot)
        app.open_browser("clipper-1")  # ofa-1 is idle now: evicted
        await settle(pilot)
        assert closed_on == [False]
