"""Waiting helpers for Pilot tests: wait on workers and on conditions the app's messages make true."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from typing import TypeVar

from textual.worker import WorkerCancelled

S = TypeVar("S")


def _reading(app) -> bool:
    """A sample table on screen is still reading pages (they arrive as messages)."""
    from tui.widgets.sample_table import SampleTable

    return any(table.reading for table in app.screen.query(SampleTable))


async def settle(pilot, timeout: float = 30.0) -> None:
    """Let short-lived workers finish and their messages be handled, and the sample table's pages
    arrive (never used with a following worker)."""
    app = pilot.app
    deadline = time.monotonic() + timeout
    rounds = 0
    # a decision hops applier thread -> app -> screen -> a worker -> the screen: a few rounds;
    # then as many as the pages on screen (and those read ahead) take
    while rounds < 5 or _reading(app):
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled after {timeout}s (sample pages still loading)")
        applier = getattr(app, "applier", None)
        if applier is not None:
            applier.flush()  # decisions are applied on their own thread, in key order
        # an exclusive worker replaced by a newer one raises here; the next round waits for that
        with contextlib.suppress(WorkerCancelled):
            await app.workers.wait_for_complete()
        await pilot.pause()
        rounds += 1


async def wait_for(pilot, condition, timeout: float = 10.0, what: str = "condition") -> None:
    """Process messages until `condition()` holds; fails loudly instead of sleeping a fixed time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause()
        await asyncio.sleep(0.02)
    await pilot.pause()  # let the change that satisfied the condition be laid out and drawn


async def opened(pilot, open_it, kind: type[S]) -> S:
    """Home settled, then `open_it()` (an `app.open_*` call) settled: the screen it pushed."""
    await settle(pilot)
    open_it()
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, kind), screen
    return screen


async def open_browser(app, pilot, run_id: str = "ofa-1"):
    """Home -> the run's browser, its first load done; returns the browser screen."""
    from tui.screens.browser import BrowserScreen

    return await opened(pilot, lambda: app.open_browser(run_id), BrowserScreen)


def decision_rows(catalog, run_id: str) -> list[tuple]:
    with catalog.connect() as con:
        return con.execute(
            "SELECT sample_id, action, scope FROM decisions WHERE run_id = ? ORDER BY seq", [run_id]
        ).fetchall()


def widget_text(widget) -> str:
    """What a Static shows, as plain text: its content rendered the way Rich draws it at the widget's width."""
    from rich.console import Console
    from rich.text import Text

    content = getattr(widget, "content", None)
    if content is None:
        return str(widget.render())
    if isinstance(content, str):
        return Text.from_markup(content).plain
    with open(os.devnull, "w") as sink:
        console = Console(width=max(widget.size.width, 40), record=True, file=sink)
        console.print(content)
        return console.export_text()


def calls_on_ui_thread(monkeypatch, cls, name: str) -> list[bool]:
    """Wrap `cls.name` to record, per call, whether it ran on the UI (main) thread."""
    on_ui: list[bool] = []
    original = getattr(cls, name)

    def recording(self, *args, **kwargs):
        on_ui.append(threading.current_thread() is threading.main_thread())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, recording)
    return on_ui
