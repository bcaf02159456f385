"""One path from a failed worker to a visible error: every screen (and the app) derives from this.

Workers run with `exit_on_error=False` so one bad run folder cannot kill the app, but then an
exception is silent unless someone listens: `Worker.StateChanged` does not bubble, so each node
that starts workers handles its own. `ReportsWorkerErrors` turns ERROR into a notification
that names the task and the error, logs the traceback, and calls `worker_failed` so the screen
replaces its "working…" placeholder; the screen stays usable.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass

from textual.message import Message
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from store.errors import ThresherError
from tui.data.workspace_view import WorkspaceState

REPEAT_S = 30.0  # the same failure of a polling worker is shown once per this many seconds


def describe(error: BaseException | None) -> str:
    """A user's error (ThresherError) as written; anything else with its type, which says more."""
    if error is None:
        return "unknown error"
    if isinstance(error, ThresherError):
        return str(error)
    return f"{type(error).__name__}: {error}"


class ReportsWorkerErrors:
    """Mixin for a Screen or the App; `WORK_LABELS` names worker groups in the user's words."""

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


@dataclass
class WorkspaceChanged(Message, bubble=False):
    """Something in the workspace changed on disk (this process or another): runs, their status,
    decisions, datasets. The app posts it to the screen on top; a screen that comes back to the
    top reads `app.state` in `on_screen_resume`."""

    state: WorkspaceState

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, WorkspaceChanged)


@dataclass
class DecisionApplied(Message, bubble=False):
    """A keep/drop/clear reached a run's in-memory overrides (the screen redraws; the log write
    follows on the writer thread). `error` set: it did not apply."""

    run_id: str
    action: str
    n: int
    error: BaseException | None


class ThresherScreen(ReportsWorkerErrors, Screen):
    """The base of every full screen of the workstation."""
