"""Export: pick selection, format, path and path style; write the manifest via store.export; offer the fine-tune."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, Select, Static

from tui.data.run_view import RunView
from tui.screens.base import ThresherScreen
from tui.widgets import keys
from tui.widgets.tables import KeyFooter
from tui.worker_errors import describe

PATH_STYLES = ("absolute", "relative")


def finetune_available() -> bool:
    """The fine-tune job ships in selection.finetune; without it the button says so instead of failing."""
    try:
        return importlib.util.find_spec("selection.finetune") is not None
    except (ImportError, ValueError):
        return False


def summary_text(result) -> str:
    meta = result.meta or {}
    lines = [
        f"[b]wrote {result.path}[/b]",
        f"format {result.format} · {result.n_exported} samples exported of {result.n_selected} selected",
        f"sidecar {result.sidecar_path}",
        f"sha256 {result.sha256}",
    ]
    if result.skipped:
        lines.append("skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(result.skipped.items())))
    if result.n_fixed:
        lines.append(f"image tokens fixed: {result.n_fixed}")
    for key in ("run_id", "selection", "n_decisions", "last_decision_seq"):
        if key in meta:
            lines.append(f"{key}: {json.dumps(meta[key], default=str)}")
    return "\n".join(lines)


class ExportScreen(ThresherScreen):
    HELP = (
        "## Export\n\nWrites the run's effective selection (the algorithm's choice with your "
        "overrides) as a manifest, atomically, with a sidecar recording run, parameters, decision "
        "count and checksum. **ctrl+e** exports; then **ctrl+f** launches the fine-tune."
    )
    BINDINGS = [
        keys.back("export"),
        Binding("ctrl+e", "export", "Export", id="export.run", tooltip="Write the manifest"),
        Binding(
            "ctrl+f", "finetune", "Fine-tune", id="export.finetune", tooltip="LoRA fine-tune on it"
        ),
    ]

    WORK_LABELS = {"export": "export", "finetune": "starting the fine-tune"}

    @dataclass
    class Done(Message):
        result: object

    def __init__(self, view: RunView) -> None:
        super().__init__()
        self.view = view
        self.result = None

    def compose(self) -> ComposeResult:
        from store.export import FORMATS

        v = self.view
        selections = [v.default_selection] + [s for s in v.selections if s != v.default_selection]
        yield Label(
            f"Export {v.run_id} ({v.meta.get('method')}, dataset {v.meta.get('dataset')})",
            id="run-header",
        )
        with VerticalScroll():
            with Horizontal(classes="form-row"):
                yield Label("selection")
                yield Select(
                    [(s, s) for s in selections],
                    value=selections[0],
                    allow_blank=False,
                    id="selection",
                )
            with Horizontal(classes="form-row"):
                yield Label("format")
                yield Select(
                    [(f, f) for f in FORMATS], value="llava", allow_blank=False, id="format"
                )
            with Horizontal(classes="form-row"):
                yield Label("path")
                yield Input(self.default_path("llava", selections[0]), id="path")
            with Horizontal(classes="form-row"):
                yield Label("image paths")
                yield Select(
                    [(p, p) for p in PATH_STYLES],
                    value="absolute",
                    allow_blank=False,
                    id="path-style",
                )
            with Horizontal(classes="form-row"):
                yield Button("Export (ctrl+e)", id="do-export", variant="primary")
                yield Button("Fine-tune (ctrl+f)", id="do-finetune", disabled=True)
            yield Static("", id="export-result")
        yield KeyFooter()

    def default_path(self, fmt: str, selection: str) -> str:
        """The same name `thresher export` picks (<dataset>-<run>-<selection>-<format>.<ext>)."""
        from store.export import default_export_path

        dataset = str(self.view.meta.get("dataset"))
        return str(
            default_export_path(self.app.workspace, dataset, self.view.run_id, selection, fmt)
        )

    @on(Select.Changed, "#format")
    @on(Select.Changed, "#selection")
    def update_path(self) -> None:
        fmt = str(self.query_one("#format", Select).value)
        sel = str(self.query_one("#selection", Select).value)
        self.query_one("#path", Input).value = self.default_path(fmt, sel)

    @on(Button.Pressed, "#do-export")
    def action_export(self) -> None:
        self.query_one("#export-result", Static).update("exporting…")
        self.run_export(
            str(self.query_one("#selection", Select).value),
            str(self.query_one("#format", Select).value),
            self.query_one("#path", Input).value,
            str(self.query_one("#path-style", Select).value),
        )

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def run_export(self, selection: str, fmt: str, path: str, style: str) -> None:
        from store.export import export

        self.app.writer.flush()  # the export must see every decision already made on screen
        result = export(
            self.app.catalog,
            dataset=str(self.view.meta.get("dataset")),
            run_id=self.view.run_id,
            selection=selection,
            fmt=fmt,
            out_path=path,
            path_style=style,
        )
        self.post_message(self.Done(result))

    def worker_failed(self, group: str, error: BaseException | None) -> None:
        if group == "export":
            box = self.query_one("#export-result", Static)
            box.update(Text.assemble(("export failed: ", "bold"), describe(error)))

    def on_export_screen_done(self, message: Done) -> None:
        box = self.query_one("#export-result", Static)
        self.result = message.result
        text = summary_text(message.result)
        if finetune_available():
            text += "\n\nctrl+f: start a LoRA fine-tune on this manifest"
        else:
            text += "\n\nfine-tune: unavailable (selection.finetune is not installed)"
        box.update(text)
        self.query_one("#do-finetune", Button).disabled = not finetune_available()

    @on(Button.Pressed, "#do-finetune")
    def action_finetune(self) -> None:
        if self.result is None:
            self.notify(
                "Export first: the fine-tune trains on the written manifest.", severity="warning"
            )
            return
        if not finetune_available():
            self.notify(
                "fine-tune unavailable: selection.finetune is not installed.", severity="error"
            )
            return
        self.launch_finetune(str(self.result.path))

    @work(thread=True, exclusive=True, group="finetune", exit_on_error=False)
    def launch_finetune(self, manifest: str) -> None:
        """Detached, like any run, on the run's own model (CLIPPER's target VLM); a run without
        one (OFA) gets the command to type instead."""
        from selection.finetune.config import FinetuneConfig
        from selection.finetune.train import create_finetune_run
        from selection.jobs import launch
        from store.errors import ThresherError

        model = (self.view.meta.get("params") or {}).get("model")
        if not model:
            raise ThresherError(
                f"run {self.view.run_id} names no base model; start the fine-tune with "
                f"`thresher train --manifest {manifest} --model PATH_OR_NAME --detach`"
            )
        run_dir = create_finetune_run(
            self.app.catalog, FinetuneConfig(manifest=manifest, model=model)
        )
        launched = launch(self.app.catalog, run_dir, detach=True)
        self.app.adopt(launched.pid)
        self.app.call_from_thread(self.notify, f"fine-tune {launched.run_id}: {launched.status}")
