"""What every screen of the workstation shares: the worker error path (tui/worker_errors.py)
and the messages the app posts to the screen on top."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message
from textual.screen import Screen

from tui.data.workspace_view import WorkspaceState
from tui.worker_errors import ReportsWorkerErrors


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
