"""Start a run: method, dataset and the method's main parameters; detached by default so it outlives the app."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.widgets import Button, Checkbox, Collapsible, Input, Label, Select, Static

from store.errors import ThresherError
from tui.data.start import Field, build_config, config_fields, method_names, ray_options
from tui.data.workspace_view import list_datasets
from tui.screens.base import ThresherScreen
from tui.widgets import keys
from tui.widgets.tables import KeyFooter
from tui.worker_errors import describe


def _input_id(field_name: str) -> str:
    return "param-" + field_name.replace(".", "--")  # widget ids cannot hold dots


_MODEL_FIELDS = ("model", "encoder", "judge_model")
FORM_HINT = "tab / shift+tab: next / previous field · the focused field's meaning shows here"


class StartRunScreen(ThresherScreen):
    HELP = (
        "## Start a run\n\nOne scrolling form in sections: method, dataset, the run (name, "
        "detach), the method's parameters (prefilled with their defaults; blank = None where "
        "allowed; the line under the form says what the focused one means) and, folded, "
        "Advanced (Ray, nested settings such as OFA's encoder). **ctrl+r** starts it. Detached "
        "runs keep going after the app closes; the monitor follows them."
    )
    BINDINGS = [
        keys.back("start"),
        Binding("ctrl+r", "start", "Start", id="start.run", tooltip="Create and launch the run"),
    ]
    WORK_LABELS = {"start-load": "listing methods and datasets", "start-run": "starting the run"}

    @dataclass
    class Loaded(Message):
        methods: list[str]
        datasets: list[str]
        models: list[str]  # cached on this machine: what model fields complete from

    @dataclass
    class Started(Message):
        run_id: str

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[Field] = []
        self._fields_for: str | None = None
        self._models = SuggestFromList([], case_sensitive=False)

    def compose(self) -> ComposeResult:
        yield Label("Start a run", id="run-header")
        # one scrolling form, sections in order; nothing in it is a focus stop without a purpose
        with VerticalScroll(id="start-form", can_focus=False):
            yield Label("Method", classes="form-section")
            with Horizontal(classes="form-row", id="method-row"):
                yield Label("method")
                yield Label("loading…", id="method-loading", classes="hint")
            yield Label("Dataset", classes="form-section")
            with Horizontal(classes="form-row", id="dataset-row"):
                yield Label("dataset")
                yield Label("loading…", id="dataset-loading", classes="hint")
            yield Label("Run", classes="form-section")
            with Horizontal(classes="form-row"):
                yield Label("run name")
                yield Input(placeholder="auto (method-dataset-time)", id="run-name", compact=True)
            with Horizontal(classes="form-row"):
                yield Label("detach")
                yield Checkbox("keep running after the app closes", True, id="detach")
            yield Label("Method parameters", classes="form-section", id="params-title")
            yield Vertical(id="params")
            with Collapsible(title="Advanced: Ray, nested settings", id="advanced"):
                with Horizontal(classes="form-row"):
                    yield Label("ray workers")
                    yield Input("0", id="ray-workers", compact=True,
                                tooltip="0: no Ray; N: shards on N Ray actors")  # fmt: skip
                with Horizontal(classes="form-row"):
                    yield Label("ray GPUs each")
                    yield Input("0", id="ray-gpus", compact=True, tooltip="GPUs per Ray actor")
                yield Vertical(id="advanced-params")
            yield Button("Start (ctrl+r)", id="start", variant="primary")
            yield Static("", id="start-result")
        yield Static(FORM_HINT, id="field-help")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="start-load", exit_on_error=False)
    def load(self) -> None:
        from selection.models.resolve import cached_models

        datasets = [d.name for d in list_datasets(self.app.workspace)]
        models = [m.name for m in cached_models()]  # walks the Hugging Face cache: not on the UI
        self.post_message(self.Loaded(method_names(), datasets, models))

    async def on_start_run_screen_loaded(self, message: Loaded) -> None:
        """The choices exist only once they are known ("loading…" is never a selectable method)."""
        # OFA first when it is there: the method a new user most likely wants, and needs no model
        methods = sorted(message.methods, key=lambda m: m != "ofa")
        self._models = SuggestFromList(message.models, case_sensitive=False)
        for name, options in (("method", methods), ("dataset", message.datasets)):
            await self.query_one(f"#{name}-loading").remove()
            row = self.query_one(f"#{name}-row")
            if options:
                await row.mount(Select([(o, o) for o in options], value=options[0],
                                       allow_blank=False, id=name, compact=True))  # fmt: skip
            else:
                what = "no datasets yet: `thresher ingest` one" if name == "dataset" else "none"
                await row.mount(Label(what, classes="hint"))
        if methods:
            await self._show_params(methods[0])
            self.query_one("#method", Select).focus()

    @on(Select.Changed, "#method")
    async def show_params(self, event: Select.Changed) -> None:
        if event.value is not Select.BLANK:
            await self._show_params(str(event.value))

    async def _show_params(self, method: str) -> None:
        if self.fields and self._fields_for == method:
            return
        main = self.query_one("#params", Vertical)
        nested = self.query_one("#advanced-params", Vertical)
        await main.remove_children()
        await nested.remove_children()
        try:
            self.fields = config_fields(method)
        except ThresherError as exc:
            self.query_one("#start-result", Static).update(str(exc))
            return
        self._fields_for = method
        rows: dict[bool, list[Horizontal]] = {False: [], True: []}
        for f in self.fields:
            rows["." in f.name].append(Horizontal(Label(f.name), self._field_widget(f),
                                                  classes="form-row"))  # fmt: skip
        await main.mount_all(rows[False])
        await nested.mount_all(rows[True])

    def _field_widget(self, f: Field) -> Input | Select:
        value = "" if f.default is None else str(f.default)
        if f.choices:
            return Select([(c, c) for c in f.choices], value=value if value in f.choices else f.choices[0],
                          allow_blank=False, id=_input_id(f.name), compact=True, tooltip=f.doc or None)  # fmt: skip
        # Model fields complete from what is cached on this machine (`thresher models`).
        leaf = f.name.rsplit(".", 1)[-1]
        suggester = self._models if leaf in _MODEL_FIELDS else None
        return Input(value, id=_input_id(f.name), suggester=suggester, compact=True,
                     tooltip=f.doc or None)  # fmt: skip

    def on_descendant_focus(self, event) -> None:
        """One line under the form says what the focused field is (its doc, as `--help` does)."""
        widget = event.widget
        doc = ""
        if widget.id and widget.id.startswith("param-"):
            name = widget.id[len("param-") :].replace("--", ".")
            doc = next((f"{f.name}: {f.doc}" for f in self.fields if f.name == name), "")
        elif widget.tooltip:
            doc = str(widget.tooltip)
        self.query_one("#field-help", Static).update(Text(doc or FORM_HINT))

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        method = self._choice("method")
        dataset = self._choice("dataset")
        if method is None or dataset is None:
            self.notify("Pick a method and a dataset first.", severity="warning")
            return
        values = {f.name: self._value(f) for f in self.fields}
        name = self.query_one("#run-name", Input).value.strip() or None
        detach = self.query_one("#detach", Checkbox).value
        ray = (
            self.query_one("#ray-workers", Input).value,
            self.query_one("#ray-gpus", Input).value,
        )
        self.query_one("#start-result", Static).update("starting…")
        self.start(str(method), str(dataset), values, name, detach, ray)

    def _choice(self, name: str) -> str | None:
        found = self.query(f"#{name}").results(Select)
        select = next(iter(found), None)
        return None if select is None or select.value is Select.BLANK else str(select.value)

    def _value(self, f: Field) -> str:
        widget = self.query_one(f"#{_input_id(f.name)}")
        value = widget.value if isinstance(widget, Input | Select) else ""
        return "" if value is Select.BLANK else str(value)

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
