"""Home: the workspace's datasets and runs, live from the app's poll; the place to open, watch or start runs."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Label

from tui.data.workspace_view import RunRow, WorkspaceState
from tui.screens.base import ThresherScreen, WorkspaceChanged
from tui.widgets.tables import KeyFooter, RowTable, under_cursor


class HomeScreen(ThresherScreen):
    HELP = (
        "## Home\n\nDatasets of this workspace (samples, flagged) and runs (status, progress, "
        "selected: the algorithm's choice with every override, what an export writes). Both "
        "follow the disk within a second, whoever writes it. Select a run and press **enter** to "
        "browse it (or watch it while it runs); **enter** on a dataset opens its samples (flags, "
        "tags, filters)."
    )
    BINDINGS = [
        Binding(
            "enter",
            "open_run",
            "Open",
            id="home.open",
            tooltip="Browse the run (monitor while running)",
        ),
        Binding(
            "m",
            "monitor",
            "Monitor",
            id="home.monitor",
            tooltip="Progress, GPUs and log of the run",
        ),
        Binding(
            "R",
            "resume",
            "Resume",
            id="home.resume",
            tooltip="Resume an interrupted, failed or cancelled run, detached",
        ),
        Binding(
            "n",
            "new_run",
            "New run",
            id="home.new",
            tooltip="Start a run (method, dataset, params)",
        ),
        Binding("x", "export", "Export", id="home.export", tooltip="Export the run's selection"),
        Binding("c", "compare", "Compare", id="home.compare", tooltip="Compare selections"),
        Binding(
            "r",
            "refresh",
            "Refresh",
            show=False,
            id="home.refresh",
            tooltip="Reread datasets and runs now (they follow the disk every second anyway)",
        ),
        Binding("q", "app.quit", "Quit", id="app.quit"),
    ]
    WORK_LABELS = {"home-resume": "resume"}

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[RunRow] = []
        self._shown = False

    def compose(self) -> ComposeResult:
        with Vertical(id="home"):
            yield Label(f"Workspace {self.app.workspace.root}", id="home-title")
            yield Label("Datasets", classes="section")
            yield RowTable(id="datasets", zebra_stripes=True)
            yield Label("Runs", classes="section")
            yield RowTable(id="runs", zebra_stripes=True)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#datasets", DataTable).add_columns(
            "id", "name", "format", "samples", "flagged", "flags"
        )
        # "selected" before "progress": at 80 columns the count stays visible, a long stage is cut
        self.query_one("#runs", DataTable).add_columns(
            "run", "method", "dataset", "status", "selected", "progress"
        )
        self.query_one("#runs", DataTable).focus()
        self.show(self.app.state)

    def action_refresh(self) -> None:
        self.app.poll_workspace(force=True)

    def on_workspace_changed(self, message: WorkspaceChanged) -> None:
        self.show(message.state)

    def on_screen_resume(self) -> None:
        self.show(self.app.state)
        if not self._shown:  # the first show: the app's first poll is already reading
            self._shown = True
            return
        self.app.poll_workspace(force=True)  # counts were not kept up to date while away

    def show(self, state: WorkspaceState) -> None:
        """Redraw both tables from the app's latest look at the workspace (polled every second)."""
        datasets = self.query_one("#datasets", DataTable)
        datasets.clear()
        for d in state.datasets:
            flags = ", ".join(f"{k} {v}" for k, v in sorted(d.flags.items()))
            datasets.add_row(
                d.dataset_id,
                d.name,
                d.format,
                d.n_samples,
                d.n_flagged,
                flags,
                key=str(d.dataset_id),
            )
        table = self.query_one("#runs", DataTable)
        keep = table.cursor_row
        table.clear()
        self.runs = state.runs
        for r in state.runs:
            selected = "" if r.selected is None else str(r.selected)
            table.add_row(
                r.run_id, r.method, r.dataset, r.status, selected, r.progress, key=r.run_id
            )
        if state.runs:
            table.move_cursor(row=min(keep, len(state.runs) - 1))

    @property
    def selected_run(self) -> RunRow | None:
        return under_cursor(self.query_one("#runs", DataTable), self.runs)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "runs":
            self.action_open_run()
        elif event.data_table.id == "datasets":  # the dataset view: samples, flags, tags
            datasets = self.app.state.datasets
            if event.cursor_row < len(datasets):
                self.app.open_dataset(datasets[event.cursor_row].name)

    def action_open_run(self) -> None:
        run = self.selected_run
        if run is None:
            self.notify("No run yet: press n to start one.", severity="warning")
        elif run.has_result:
            self.app.open_browser(run.run_id)
        else:
            self.app.open_monitor(run.run_id)

    def action_monitor(self) -> None:
        if (run := self.selected_run) is not None:
            self.app.open_monitor(run.run_id)

    def action_export(self) -> None:
        if (run := self.selected_run) is not None:
            self.app.open_export(run.run_id)

    def action_compare(self) -> None:
        self.app.open_compare([r.run_id for r in self.runs if r.has_result])

    def action_resume(self) -> None:
        if (run := self.selected_run) is not None:
            self.resume(run.run_id)

    @work(thread=True, exclusive=True, group="home-resume", exit_on_error=False)
    def resume(self, run_id: str) -> None:
        """Relaunch the run folder detached (finished shards are kept), then watch it."""
        from selection.jobs import launch

        launched = launch(self.app.catalog, self.app.workspace.run_dir(run_id), detach=True)
        self.app.adopt(launched.pid)
        self.app.call_from_thread(self.notify, f"{run_id}: {launched.status}")
        if launched.status != "done":
            self.app.call_from_thread(self.app.open_monitor, run_id)

    def action_new_run(self) -> None:
        self.app.open_start_run()
