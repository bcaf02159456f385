"""Home: the workspace's datasets and runs, refreshed in a worker; the place to open, watch or start runs."""

from __future__ import annotations

from dataclasses import dataclass

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label

from tui.data.workspace_view import DatasetRow, RunRow, list_datasets, list_runs

REFRESH_S = 2.0


class HomeScreen(Screen):
    HELP = (
        "## Home\n\nDatasets of this workspace (samples, flagged) and runs (status, progress, "
        "selected). Select a run and press **enter** to browse it (or watch it while it runs)."
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
        Binding("r", "refresh", "Refresh", id="home.refresh", tooltip="Reread datasets and runs"),
        Binding("q", "app.quit", "Quit", id="app.quit"),
    ]

    @dataclass
    class Listed(Message):
        datasets: list[DatasetRow]
        runs: list[RunRow]

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, HomeScreen.Listed)

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[RunRow] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="home"):
            yield Label(f"Workspace {self.app.workspace.root}", id="home-title")
            yield Label("Datasets", classes="section")
            yield DataTable(id="datasets", cursor_type="row", zebra_stripes=True)
            yield Label("Runs", classes="section")
            yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#datasets", DataTable).add_columns(
            "id", "name", "format", "samples", "flagged", "flags"
        )
        self.query_one("#runs", DataTable).add_columns(
            "run", "method", "dataset", "status", "progress", "selected"
        )
        self.query_one("#runs", DataTable).focus()
        self.action_refresh()
        self.set_interval(REFRESH_S, self.action_refresh)

    @work(thread=True, exclusive=True, group="home-list", exit_on_error=False)
    def action_refresh(self) -> None:
        self.post_message(
            self.Listed(list_datasets(self.app.workspace), list_runs(self.app.workspace))
        )

    def on_home_screen_listed(self, message: Listed) -> None:
        datasets = self.query_one("#datasets", DataTable)
        datasets.clear()
        for d in message.datasets:
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
        self.runs = message.runs
        for r in message.runs:
            selected = "" if r.selected is None else str(r.selected)
            table.add_row(
                r.run_id, r.method, r.dataset, r.status, r.progress, selected, key=r.run_id
            )
        if message.runs:
            table.move_cursor(row=min(keep, len(message.runs) - 1))

    @property
    def selected_run(self) -> RunRow | None:
        table = self.query_one("#runs", DataTable)
        if not self.runs or table.cursor_row >= len(self.runs):
            return None
        return self.runs[table.cursor_row]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "runs":
            self.action_open_run()

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
        from store.errors import ThresherError

        try:
            launched = launch(self.app.catalog, self.app.workspace.run_dir(run_id), detach=True)
        except ThresherError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self.notify, f"{run_id}: {launched.status}")
        if launched.status != "done":
            self.app.call_from_thread(self.app.open_monitor, run_id)

    def action_new_run(self) -> None:
        self.app.open_start_run()
