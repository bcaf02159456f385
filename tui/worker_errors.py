"""One path from a failed worker to a visible error, for every screen, widget and the app.

Workers run with `exit_on_error=False` so one bad run folder cannot kill the app, but then an
exception is silent unless someone listens: `Worker.StateChanged` does not bubble, so each node
that starts workers handles its own. `ReportsWorkerErrors` turns ERROR into a notification
that names the task and the error, logs the traceback, and calls `worker_failed` so the node
replaces its "working…" placeholder; the screen stays usable.
"""

from __future__ import annotations

import time
import traceback

from textual.worker import Worker, WorkerState

from store.errors import ThresherError

REPEAT_S = 30.0  # the same failure of a polling worker is shown once per this many seconds


def describe(error: BaseException | None) -> str:
    """A user's error (ThresherError) as written; anything else with its type, which says more."""
    if error is None:
        return "unknown error"
    if isinstance(error, ThresherError):
        return str(error)
    return f"{type(error).__name__}: {error}"


class ReportsWorkerErrors:
    """Mixin for a Screen, a Widget or the App; `WORK_LABELS` names worker groups in the user's words."""

    WORK_LABELS: dict[str, str] = {}

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        worker = event.worker
        error = worker.error
        group = worker.group or worker.name
        what = self.WORK_LABELS.get(group, group)
        text = f"{what} failed: {describe(error)}"
        app = self.app  # type: ignore[attr-defined]
        if error is not None:
            app.log.error("".join(traceback.format_exception(error)))
        shown: dict[str, float] = app.__dict__.setdefault("_worker_errors_shown", {})
        now = time.monotonic()
        if now - shown.get(text, -REPEAT_S) >= REPEAT_S:
            shown[text] = now
            app.notify(text, title="Error", severity="error", timeout=15)
        self.worker_failed(group, error)

    def worker_failed(self, group: str, error: BaseException | None) -> None:
        """Put back what the worker was going to replace ("computing…", "starting…"); default: nothing."""
