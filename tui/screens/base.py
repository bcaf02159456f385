"""What every screen of the workstation shares: the worker error path (tui/worker_errors.py)
and the messages the app posts to the screen on top."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import work
from textual.message import Message
from textual.screen import Screen

from tui.data.workspace_view import WorkspaceState
from tui.worker_errors import ReportsWorkerErrors

if TYPE_CHECKING:
    from tui.data.run_view import RunView


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


class DecidingScreen(ThresherScreen):
    """A screen listing some rows of one run (`view`) that the user keeps or drops: decisions go
    through the app's applier (off the UI thread, in key order), and the rows shown read their
    decisions again, in a worker, when the applier says they are applied."""

    view: RunView
    WORK_LABELS = {"decisions": "reading decisions"}

    @dataclass
    class DecisionsRead(Message):
        found: dict[int, tuple[bool, str | None]]  # rid -> (algorithm's choice, override)

    def decide_rows(self, rids: list[int], action: str) -> None:
        if rids:
            self.app.decide(self.view, rids, action, "sample" if len(rids) == 1 else "list")  # type: ignore[attr-defined]

    def on_decision_applied(self, message: DecisionApplied) -> None:
        if message.run_id == self.view.run_id and message.error is None:
            self.read_decisions(self.shown_rids())

    @work(thread=True, exclusive=True, group="decisions", exit_on_error=False)
    def read_decisions(self, rids: list[int]) -> None:
        self.post_message(self.DecisionsRead(self.view.decisions(rids)))

    def on_deciding_screen_decisions_read(self, message: DecisionsRead) -> None:
        self.show_decisions(message.found)

    def shown_rids(self) -> list[int]:
        """The rows on screen whose decisions are shown."""
        raise NotImplementedError

    def show_decisions(self, found: dict[int, tuple[bool, str | None]]) -> None:
        """Redraw the rows in `found` with these decisions."""
        raise NotImplementedError
