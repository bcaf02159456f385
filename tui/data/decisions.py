"""Writes the user's keep/drop/clear decisions to the catalog's log, in key-press order, off the UI thread.

One FIFO thread per app: each decision becomes one `store.decisions.record` call (one short
transaction, one Arrow batch), so a decision is on disk tens of milliseconds after the key,
and two quick keys on the same sample can never be committed in the wrong order.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from store.catalog import Catalog


@dataclass(frozen=True)
class Decision:
    run_id: str
    sample_ids: tuple[int, ...]
    action: str  # keep | drop | clear
    scope: str = "sample"  # sample | list | group:<column>=<value>


Callback = Callable[[Decision, "BaseException | None"], None]


class _InOrder:
    """One daemon thread that handles queued items strictly in submission order."""

    NAME = "in-order"

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=self.NAME, daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Items submitted but not yet handled."""
        return self._queue.unfinished_tasks

    def flush(self, timeout: float | None = None) -> None:
        """Block until every queued item is handled (tests; app exit)."""
        self._queue.join()

    def close(self, timeout: float = 30.0) -> None:
        """Handle what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                return
            self._handle(item)

    def _handle(self, item: Any) -> None:  # calls self._queue.task_done() exactly once
        raise NotImplementedError


class DecisionWriter(_InOrder):
    """Queue decisions; a daemon thread commits them one by one and reports each via `on_done`."""

    NAME = "decision-writer"

    def __init__(
        self, catalog: Catalog | Callable[[], Catalog], on_done: Callback | None = None
    ) -> None:
        self._catalog = catalog  # or a function giving it (the app opens it in a worker)
        self.on_done = on_done
        super().__init__()

    def submit(self, decision: Decision) -> None:
        if decision.sample_ids:
            self._queue.put(decision)

    def _handle(self, item: Decision) -> None:
        error: BaseException | None = None
        try:
            from store import decisions as decision_log  # pyarrow: not before the first paint

            catalog = self._catalog() if callable(self._catalog) else self._catalog
            decision_log.record(
                catalog, item.run_id, list(item.sample_ids), item.action, scope=item.scope
            )
        except Exception as exc:  # ThresherError, a DuckDB error: it must reach the UI
            error = exc
        finally:
            # before on_done, so `pending` ("saving N…") already counts this one as settled
            self._queue.task_done()
        if self.on_done is not None:
            # the app may be shutting down; the decision itself is committed either way
            with contextlib.suppress(Exception):
                self.on_done(item, error)


AppliedCallback = Callable[[str, str, int, "BaseException | None"], None]


class Applier(_InOrder):
    """Applies decisions to a run's in-memory overrides off the UI thread, in key order, then
    queues each for the log (`DecisionWriter`). `rids` may be a function (a group's members are
    looked up on this thread too). `on_done(run_id, action, n, error)` runs on this thread: it
    must only post a message (thread-safe), never wait for the UI."""

    NAME = "decision-applier"

    def __init__(self, writer: DecisionWriter, on_done: AppliedCallback) -> None:
        self.writer = writer
        self.on_done = on_done
        super().__init__()

    def submit(
        self, view, rids: list[int] | Callable[[], list[int]], action: str, scope: str
    ) -> None:
        self._queue.put((view, rids, action, scope))

    def _handle(self, item: tuple) -> None:
        view, rids, action, scope = item
        error: BaseException | None = None
        n = 0
        try:
            picked = rids() if callable(rids) else rids
            if picked:
                ids = view.apply(picked, action)
                n = len(ids)
                self.writer.submit(Decision(view.run_id, tuple(ids), action, scope))
        except Exception as exc:  # a closed view, a DuckDB error: reported, the thread lives on
            error = exc
        try:
            with contextlib.suppress(Exception):  # before task_done: flush() sees it posted
                self.on_done(view.run_id, action, n, error)
        finally:
            self._queue.task_done()
