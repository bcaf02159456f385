"""Start a run: method, dataset and the method's main parameters; detached by default so it outlives the app."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from store.errors import ThresherError
from tui.data.start import Field, build_config, config_fields, method_names, ray_options
from tui.data.workspace_view import list_datasets
from tui.screens.base import ThresherScreen, describe
from tui.widgets.tables import KeyFooter


def _input_id(field_name: str) -> str:
    return "param-" + field_name.replace(".", "--")  # widget ids cannot hold dots


_MODEL_FIELDS = ("model", "encoder", "judge_model")


class StartRunScreen(ThresherScreen):
    HELP = (
        "## Start a run\n\nPick the method and dataset, adjust the main parameters (blank = None "
        "where allowed) and press **ctrl+r**. Detached runs keep going after the app closes; the "
        "monitor follows them."
    )
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="start.back"),
        Binding("ctrl+r", "start", "Start", id="start.run", tooltip="Create and launch the run"),
    ]
    WORK_LABELS = {"start-load": "listing methods and datasets", "start-run": "starting the run"}

    @dataclass
    class Loaded(Message):
        methods: list[str]
        datasets: list[str]

    @dataclass
    class Started(Message):
        run_id: str

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[Field] = []

    def compose(self) -> ComposeResult:
        yield Label("Start a run", id="run-header")
        with VerticalScroll(id="start-form"):
            with Horizontal(classes="form-row"):
                yield Label("method")
                yield Select([], id="method", prompt="loading…")
            with Horizontal(classes="form-row"):
                yield Label("dataset")
                yield Select([], id="dataset", prompt="loading…")
            with Horizontal(classes="form-row"):
                yield Label("name")
                yield Input(placeholder="auto", id="run-name")
            with Horizontal(classes="form-row"):
                yield Checkbox("detach (keeps running after the app closes)", True, id="detach")
            with Horizontal(classes="form-row"):
                yield Label("ray workers")
                yield Input("0", id="ray-workers", tooltip="0: no Ray; N: shards on N Ray actors")
            with Horizontal(classes="form-row"):
                yield Label("ray GPUs each")
                yield Input("0", id="ray-gpus", tooltip="GPUs per Ray actor")
            yield VerticalScroll(id="params")
            yield Button("Start (ctrl+r)", id="start", variant="primary")
            yield Static("", id="start-result")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="start-load", exit_on_error=False)
    def load(self) -> None:
        datasets = [d.name for d in list_datasets(self.app.workspace)]
        self.post_message(self.Loaded(method_names(), datasets))

    def on_start_run_screen_loaded(self, message: Loaded) -> None:
        method = self.query_one("#method", Select)
        method.set_options([(m, m) for m in message.methods])
        if message.methods:
            method.value = message.methods[0]
        dataset = self.query_one("#dataset", Select)
        dataset.set_options([(d, d) for d in message.datasets])
        if message.datasets:
            dataset.value = message.datasets[0]
        method.focus()

    @on(Select.Changed, "#method")
    async def show_params(self, event: Select.Changed) -> None:
        params = self.query_one("#params", VerticalScroll)
        await params.remove_children()
        if event.value is Select.BLANK:
            return
        try:
            self.fields = config_fields(str(event.value))  # the form scrolls; all of them
        except ThresherError as exc:
            self.query_one("#start-result", Static).update(str(exc))
            return
        rows = []
        for f in self.fields:
            value = "" if f.default is None else str(f.default)
            # Model fields complete from what is cached on this machine (`thresher models`).
            leaf = f.name.rsplit(".", 1)[-1]
            suggester = self._cached_models() if leaf in _MODEL_FIELDS else None
            field_input = Input(value, id=_input_id(f.name), suggester=suggester)
            rows.append(Horizontal(Label(f.name), field_input, classes="form-row"))
        await params.mount_all(rows)

    def _cached_models(self) -> SuggestFromList:
        if getattr(self, "_models", None) is None:
            from selection.models.resolve import cached_models

            self._models = SuggestFromList([m.name for m in cached_models()], case_sensitive=False)
        return self._models

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        method, dataset = (
            self.query_one("#method", Select).value,
            self.query_one("#dataset", Select).value,
        )
        if method is Select.BLANK or dataset is Select.BLANK:
            self.notify("Pick a method and a dataset first.", severity="warning")
            return
        values = {f.name: self.query_one(f"#{_input_id(f.name)}", Input).value for f in self.fields}
        name = self.query_one("#run-name", Input).value.strip() or None
        detach = self.query_one("#detach", Checkbox).value
        ray = (
            self.query_one("#ray-workers", Input).value,
            self.query_one("#ray-gpus", Input).value,
        )
        self.query_one("#start-result", Static).update("starting…")
        self.start(str(method), str(dataset), values, name, detach, ray)

    @work(thread=True, exclusive=True, group="start-run", exit_on_error=False)
    def start(
        self,
        method: str,
        dataset: str,
        values: dict[str, str],
        name: str | None,
        detach: bool,
        ray: tuple[str, str],
    ) -> None:
        from selection.jobs import start_run

        config = build_config(method, values)  # any error: worker_failed says it on the form
        options = ray_options(*ray)
        launched = start_run(
            self.app.catalog, method, dataset, config, detach=detach, name=name, ray=options
        )
        self.app.adopt(launched.pid)
        self.post_message(self.Started(launched.run_id))

    def worker_failed(self, group: str, error: BaseException | None) -> None:
        if group == "start-run":
            box = self.query_one("#start-result", Static)
            box.update(Text.assemble(("not started: ", "bold"), describe(error)))

    def on_start_run_screen_started(self, message: Started) -> None:
        box = self.query_one("#start-result", Static)
        box.update(f"started {message.run_id}")
        self.app.pop_screen()
        self.app.open_monitor(message.run_id)
