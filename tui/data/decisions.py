"""Writes the user's keep/drop/clear decisions to the catalog's log, in key-press order, off the UI thread.

One FIFO thread per app: each decision becomes one `store.decisions.record` call (one short
transaction, one Arrow batch), so a decision is on disk tens of milliseconds after the key,
and two quick keys on the same sample can never be committed in the wrong order.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from store import decisions as decision_log
from store.catalog import Catalog
from store.errors import ThresherError


@dataclass(frozen=True)
class Decision:
    run_id: str
    sample_ids: tuple[int, ...]
    action: str  # keep | drop | clear
    scope: str = "sample"  # sample | list | group:<column>=<value>


Callback = Callable[[Decision, "BaseException | None"], None]


class DecisionWriter:
    """Queue decisions; a daemon thread commits them one by one and reports each via `on_done`."""

    def __init__(self, catalog: Catalog, on_done: Callback | None = None) -> None:
        self.catalog = catalog
        self.on_done = on_done
        self._queue: queue.Queue[Decision | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="decision-writer", daemon=True)
        self._thread.start()

    def submit(self, decision: Decision) -> None:
        if decision.sample_ids:
            self._queue.put(decision)

    def flush(self, timeout: float | None = None) -> None:
        """Block until every queued decision is committed (tests; app exit)."""
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                error: BaseException | None = None
                try:
                    decision_log.record(
                        self.catalog,
                        item.run_id,
                        list(item.sample_ids),
                        item.action,
                        scope=item.scope,
                    )
                except (ThresherError, OSError) as exc:
                    error = exc
                except Exception as exc:  # a DuckDB error must reach the UI, not kill the thread
                    error = exc
                if self.on_done is not None:
                    self.on_done(item, error)
            finally:
                self._queue.task_done()
