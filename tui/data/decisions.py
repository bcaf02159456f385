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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from store.catalog import Catalog


@dataclass(frozen=True)
class Decision:
    run_id: str
    sample_ids: tuple[int, ...]
    action: str  # keep | drop | clear
    scope: str = "sample"  # sample | list | group:<column>=<value>


Callback = Callable[[Decision, "BaseException | None"], None]


class DecisionWriter:
    """Queue decisions; a daemon thread commits them one by one and reports each via `on_done`."""

    def __init__(
        self, catalog: Catalog | Callable[[], Catalog], on_done: Callback | None = None
    ) -> None:
        self._catalog = catalog  # or a function giving it (the app opens it in a worker)
        self.on_done = on_done
        self._queue: queue.Queue[Decision | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="decision-writer", daemon=True)
        self._thread.start()

    def submit(self, decision: Decision) -> None:
        if decision.sample_ids:
            self._queue.put(decision)

    @property
    def pending(self) -> int:
        """Decisions submitted but not yet committed (the header shows "saving" while > 0)."""
        return self._queue.unfinished_tasks

    def flush(self, timeout: float | None = None) -> None:
        """Block until every queued decision is committed (tests; app exit)."""
        self._queue.join()

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                return
            error: BaseException | None = None
            try:
                from store import decisions as decision_log  # pyarrow: not before the first paint

                catalog = self._catalog() if callable(self._catalog) else self._catalog
                decision_log.record(
                    catalog, item.run_id, list(item.sample_ids), item.action, scope=item.scope
                )
            except (
                Exception
            ) as exc:  # ThresherError, a DuckDB error: it must reach the UI, not kill the thread
                error = exc
            finally:
                # before on_done, so `pending` already counts this one as settled
                self._queue.task_done()
            if self.on_done is not None:
                # the app may be shutting down; the decision itself is committed either way
                with contextlib.suppress(Exception):
                    self.on_done(item, error)


AppliedCallback = Callable[[str, str, int, "BaseException | None"], None]


class Applier:
    """Applies decisions to a run's in-memory overrides off the UI thread, in key order, then
    queues each for the log (`DecisionWriter`). `rids` may be a function (a group's members are
    looked up on this thread too). `on_done(run_id, action, n, error)` runs on this thread: it
    must only post a message (thread-safe), never wait for the UI."""

    def __init__(self, writer: DecisionWriter, on_done: AppliedCallback) -> None:
        self.writer = writer
        self.on_done = on_done
        self._queue: queue.Queue[tuple | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="decision-applier", daemon=True)
        self._thread.start()

    def submit(
        self, view, rids: list[int] | Callable[[], list[int]], action: str, scope: str
    ) -> None:
        self._queue.put((view, rids, action, scope))

    def flush(self) -> None:
        """Block until every submitted decision is applied in memory and queued for the log."""
        self._queue.join()

    def close(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                return
            view, rids, action, scope = item
            error: BaseException | None = None
            n = 0
            try:
                picked = rids() if callable(rids) else rids
                if picked:
                    ids = view.apply(picked, action)
                    n = len(ids)
                    if scope == "sample" and n > 1:
                        scope = "list"
                    self.writer.submit(Decision(view.run_id, tuple(ids), action, scope))
            except Exception as exc:  # a closed view, a DuckDB error: reported, the thread lives on
                error = exc
            try:
                with contextlib.suppress(Exception):  # before task_done: flush() sees it posted
                    self.on_done(view.run_id, action, n, error)
            finally:
                self._queue.task_done()
