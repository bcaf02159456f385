"""The workstation app: wires screens together, owns the decision writer, F1 help and the command palette."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from textual import events, work
from textual.app import App
from textual.binding import Binding
from textual.command import Hit, Hits, Provider
from textual.message import Message
from textual.screen import Screen

from store.workspace import Workspace
from tui.data.decisions import Applier, Decision, DecisionWriter
from tui.data.workspace_view import WorkspaceReader, WorkspaceState, workspace_stamp
from tui.screens.base import DecisionApplied, WorkspaceChanged
from tui.screens.home import HomeScreen
from tui.widgets.dialogs import HelpScreen, help_text
from tui.worker_errors import ReportsWorkerErrors, describe

if TYPE_CHECKING:  # DuckDB and pyarrow load in workers, after the first paint
    from store.catalog import Catalog
    from tui.data.run_view import RunView

POLL_S = 1.0  # how often the workspace's files are stat'ed for changes made by anyone
MAX_VIEWS = 3  # opened runs kept in memory besides those on the screen stack


@dataclass
class DecisionSaved(Message):
    """The writer committed (or failed to commit) a decision; screens refresh their "saving" hint."""

    decision: Decision
    error: BaseException | None


def escape_then_key(event: events.Event) -> tuple[events.Key, events.Key] | None:
    """Esc followed quickly by a letter or digit reaches the app as one Meta key ("\x1bd" is alt+d):
    tmux waits `escape-time` (500 ms by default) for that, Textual `ESCDELAY` (100 ms). The
    app binds no alt+letter, so such a key is read as the two keys the user pressed."""
    if not isinstance(event, events.Key) or not event.key.startswith("alt+"):
        return None
    rest = event.key.removeprefix("alt+")
    if rest.startswith("shift+") and len(rest) == len("shift+") + 1:
        rest = rest[-1].upper()
    if len(rest) != 1:
        return None
    return events.Key("escape", "\x1b"), events.Key(rest, rest)


# what the palette offers for each run with a selection: (verb, opener, what it shows)
RUN_COMMANDS: tuple[tuple[str, Callable[[ThresherApp, str], None], str], ...] = (
    ("browse", lambda app, run_id: app.open_browser(run_id), "Groups and samples"),
    ("export", lambda app, run_id: app.open_export(run_id), "Write a manifest"),
    (
        "plots",
        lambda app, run_id: app.open_plots([run_id]),
        "Confidence, cluster sizes, PCA map; subsets, c(p), perplexity",
    ),
)


class ThresherCommands(Provider):
    """Palette entries spoken as "category: action" (posting's convention)."""

    def commands(self) -> Iterable[tuple[str, object, str]]:
        """From the app's cached look at the workspace: typing in the palette reads no file."""
        app = self.app
        assert isinstance(app, ThresherApp)
        state = app.state
        yield "view: home", app.go_home, "Datasets and runs"
        yield "run: start a new run", app.open_start_run, "Method, dataset, parameters"
        yield "help: keys for the focused widget", app.action_help, "Same as F1"
        yield from getattr(self.screen, "palette_commands", list)()
        for ds in state.datasets:
            yield (
                f"dataset: {ds.name}",
                partial(app.open_dataset, ds.name),
                "Samples, flags, tags, filters",
            )
        for run in state.runs:
            if run.has_result:
                for verb, opens, help in RUN_COMMANDS:
                    yield f"{verb}: {run.run_id}", partial(opens, app, run.run_id), help
                if run.searchable:
                    yield (
                        f"search: {run.run_id}",
                        partial(app.open_search, run.run_id),
                        "By meaning (the run's CLIP), more like this",
                    )
            yield (
                f"monitor: {run.run_id}",
                partial(app.open_monitor, run.run_id),
                "Progress and log",
            )
        yield (
            "compare: selections of all runs",
            partial(app.open_compare, None),
            "Overlap, histograms",
        )
        yield (
            "plots: overlap matrix of all runs",
            partial(app.open_plots, None),
            "Jaccard overlap of every run's selections, shaded",
        )

    async def discover(self) -> Hits:
        for name, callback, help in self.commands():
            yield Hit(1.0, name, callback, help=help)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help in self.commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help)  # type: ignore[arg-type]


class ThresherApp(ReportsWorkerErrors, App):
    CSS_PATH = "app.tcss"
    TITLE = "Thresher"
    COMMANDS = App.COMMANDS | {ThresherCommands}
    BINDINGS = [
        Binding("f1", "help", "Help", id="app.help", tooltip="Help for the focused widget"),
        Binding("ctrl+q", "quit", "Quit", show=False, id="app.quit_ctrl"),
    ]

    def __init__(
        self, workspace: Workspace, image_mode: str = "none", open_run: str | None = None
    ) -> None:
        super().__init__()
        self.workspace = workspace
        self.image_mode = image_mode
        self.open_run = open_run
        self._catalog: Catalog | None = None
        self._catalog_lock = threading.Lock()
        self.writer = DecisionWriter(lambda: self.catalog, self._decision_done)
        # decisions change the in-memory view on this thread, in key order, never on the UI's
        self.applier = Applier(self.writer, lambda *a: self.post_message(DecisionApplied(*a)))
        self._views: dict[str, RunView] = {}
        self._views_lock = threading.Lock()
        self._closing = False
        self.state = WorkspaceState([], [], {})
        self._reader = WorkspaceReader(workspace)
        self._stamp: tuple | None = None
        self._children: set[int] = set()  # detached jobs this app started, reaped when they end

    WORK_LABELS = {"workspace-poll": "reading the workspace", "open-run": "opening the run"}

    def on_mount(self) -> None:
        self.push_screen(HomeScreen())
        if self.open_run:
            self.open_browser(self.open_run)
        self.poll_workspace()
        self.set_interval(POLL_S, self._poll)

    async def on_event(self, event: events.Event) -> None:
        keys = escape_then_key(event)
        if keys is not None and isinstance(event, events.Key):
            bindings = self.screen.active_bindings
            if event.key not in bindings:
                escape, key = keys
                bound = bindings.get("escape")
                if bound is not None and bound.enabled:
                    # now, so the key goes where Esc leaves the focus (a prompt it closed is gone)
                    await self.run_action(bound.binding.action, bound.node)
                else:
                    await super().on_event(escape)
                self.post_message(key)
                return
        await super().on_event(event)

    def _poll(self) -> None:
        self.poll_workspace(counts=isinstance(self.screen, HomeScreen))

    # ---------------------------------------------------------------- live workspace

    @property
    def catalog(self) -> Catalog:
        """Opened (created, migrated) on first use, in the first worker that needs it."""
        with self._catalog_lock:
            if self._catalog is None:
                from store.catalog import Catalog

                self._catalog = Catalog.open(self.workspace)
            return self._catalog

    def adopt(self, pid: int | None) -> None:
        """A detached job this process started: reap it when it ends (no zombie until quit)."""
        if pid:
            self._children.add(pid)

    def _reap(self) -> None:
        for pid in list(self._children):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not ours any more (reaped elsewhere)
                done = pid
            if done:
                self._children.discard(pid)

    @work(thread=True, exclusive=True, group="workspace-poll", exit_on_error=False)
    def poll_workspace(self, force: bool = False, counts: bool = True) -> None:
        """Stat the workspace's files; read it again only when one changed (or `force`).
        `counts`: recount effective selections (Home shows them; other screens do not)."""
        self._reap()
        self.catalog  # noqa: B018 -- the first poll creates/migrates it, off the UI thread
        stamp = workspace_stamp(self.workspace)
        if stamp == self._stamp and not force:
            return
        state = self._reader.read(counts)
        self._stamp = stamp
        self.post_message(WorkspaceChanged(state))

    def on_workspace_changed(self, message: WorkspaceChanged) -> None:
        self.state = message.state
        if self.screen_stack:  # none while the app shuts down
            self.screen.post_message(WorkspaceChanged(message.state))

    def decide(self, view: RunView, rids, action: str, scope: str) -> None:
        """keep / drop / clear rows of a run (or a function returning them): applied in memory
        off the UI thread, then logged; screens hear DecisionApplied."""
        self.applier.submit(view, rids, action, scope)

    def on_decision_applied(self, message: DecisionApplied) -> None:
        if message.error is not None:
            self.notify(
                f"{message.action} in run {message.run_id} NOT applied, nothing was logged: "
                f"{describe(message.error)}. Press the key again; if it fails again, reopen the "
                "run (Esc, then Enter on it in Home).",
                severity="error",
                timeout=10,
            )
        self.screen.post_message(
            DecisionApplied(message.run_id, message.action, message.n, message.error)
        )

    def _decision_done(self, decision: Decision, error: BaseException | None) -> None:
        """Runs on the writer thread: hand the outcome to the UI thread (not while it shuts down)."""
        if self._closing:
            return
        if error is not None:
            self.call_from_thread(
                self.notify,
                f"decision NOT saved ({decision.action}): {error}",
                severity="error",
                timeout=10,
            )
        self.call_from_thread(lambda: self.screen.post_message(DecisionSaved(decision, error)))

    def view(self, run_id: str) -> RunView:
        """The run's RunView, opened on first use (DuckDB and a catalog read: call it from a
        worker, as `with_views` does; tables load in the browser's first worker)."""
        with self._views_lock:
            if run_id in self._views:
                self._views[run_id] = self._views.pop(run_id)  # most recently used last
                return self._views[run_id]
        from tui.data.run_view import RunView

        view = RunView(self.workspace, run_id, load=False)
        with self._views_lock:
            kept = self._views.setdefault(run_id, view)
        if kept is not view:  # another thread opened it meanwhile
            view.close()
        return kept

    def with_views(self, run_ids: list[str], show: Callable[[list[RunView]], Screen]) -> None:
        """Open the runs off the UI thread, then push the screen `show` builds from them."""
        self._open_views(list(run_ids), show)

    @work(thread=True, group="open-run", exit_on_error=False)
    def _open_views(self, run_ids: list[str], show: Callable[[list[RunView]], Screen]) -> None:
        views = [self.view(r) for r in run_ids]
        self.call_from_thread(self._show_views, views, show)

    def _show_views(self, views: list[RunView], show: Callable[[list[RunView]], Screen]) -> None:
        self._guard(lambda: self.push_screen(show(views)))
        self._evict_views()

    def _evict_views(self) -> None:
        """Close the least recently opened runs' in-memory tables, except those a screen shows."""
        in_use = {id(getattr(s, "view", None)) for s in self.screen_stack}
        in_use |= {id(v) for s in self.screen_stack for v in getattr(s, "views", [])}
        with self._views_lock:
            idle = [r for r, v in self._views.items() if id(v) not in in_use]
            closing = [self._views.pop(r) for r in idle[: max(len(idle) - MAX_VIEWS, 0)]]
        if closing:
            self._close_views(closing)

    @work(thread=True, group="close-run", exit_on_error=False)
    def _close_views(self, views: list[RunView]) -> None:
        """Off the UI thread: a close waits for an ordering still being written (up to ~0.5 s)."""
        for view in views:
            view.close()

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as exc:  # a damaged run folder: say so, stay where we are
            self.notify(describe(exc), severity="error", timeout=8)

    # ---------------------------------------------------------------- navigation

    def go_home(self) -> None:
        while len(self.screen_stack) > 2:
            self.pop_screen()

    def open_browser(self, run_id: str) -> None:
        from tui.screens.browser import BrowserScreen

        self.with_views([run_id], lambda views: BrowserScreen(views[0]))

    def open_detail(self, view: RunView, rid: int) -> None:
        from tui.screens.detail import DetailScreen

        self.push_screen(DetailScreen(view, rid))

    def open_monitor(self, run_id: str) -> None:
        from tui.screens.monitor import MonitorScreen

        self._guard(lambda: self.push_screen(MonitorScreen(self.workspace.runs_dir, run_id)))

    def open_export(self, run_id: str) -> None:
        from tui.screens.export import ExportScreen

        self.with_views([run_id], lambda views: ExportScreen(views[0]))

    def open_compare(self, run_ids: list[str] | None) -> None:
        from tui.screens.compare import CompareScreen

        ids = (
            run_ids if run_ids is not None else [r.run_id for r in self.state.runs if r.has_result]
        )
        self.with_views(ids, CompareScreen)

    def open_search(self, run_id: str, text: str | None = None, like: int | None = None) -> None:
        from tui.screens.search import SearchScreen

        self.with_views([run_id], lambda views: SearchScreen(views[0], text, like))

    def open_grid(self, view: RunView, rids: list[int], title: str) -> None:
        from tui.screens.grid import GridScreen

        self.push_screen(GridScreen(view, rids, title))

    def open_dataset(self, name: str) -> None:
        from tui.screens.dataset import DatasetScreen

        self._guard(lambda: self.push_screen(DatasetScreen(name)))

    def open_plots(self, run_ids: list[str] | None) -> None:
        """Plots of one run; of several (None: every run with a result), their overlap matrix."""
        from tui.screens.plots import PlotsScreen

        ids = run_ids or [r.run_id for r in self.state.runs if r.has_result]
        self.with_views(ids, PlotsScreen)

    def open_start_run(self) -> None:
        from tui.screens.start_run import StartRunScreen

        self.push_screen(StartRunScreen())

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(help_text(self.focused, self.screen)))

    def on_unmount(self) -> None:
        self._closing = True
        self.applier.close(timeout=10)
        self.writer.close(timeout=10)
        for view in self._views.values():
            view.close()

    async def action_quit(self) -> None:
        self.applier.flush()
        self.writer.flush()  # every decision already shown is on disk before we go
        self.exit()
