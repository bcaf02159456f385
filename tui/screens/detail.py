"""Sample detail: the image (textual-image, mode chosen at start), the whole conversation, every score, probes, neighbours."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Label, Static

from tui.data.detail import SampleDetail, load_detail
from tui.data.run_view import RunView, spelled
from tui.screens.base import DecisionApplied, ThresherScreen
from tui.widgets import keys
from tui.widgets.images import image_widget
from tui.widgets.tables import KeyFooter
from tui.worker_errors import describe


def render_detail(d: SampleDetail) -> str:
    """Rich markup of everything but the image (pure, so tests can read it)."""
    yours = d.override is not None
    eff = spelled(d.override == "keep" if yours else d.algo, yours)
    mine = spelled(d.override == "keep", True) if yours else "-"
    out = [
        f"[b]sample {escape(d.orig_id)}[/b]  task {escape(d.task or '-')}",
        f"algorithm: {spelled(d.algo, False)} · yours: {mine} · effective: {eff}",
    ]
    if d.flags:
        out.append(f"flags: {', '.join(d.flags)}")
    out.append("")
    out.append("[b]Conversation[/b]")
    for turn in d.conversation:
        out.append(
            f"[b]{escape(str(turn.get('role', '?')))}:[/b] {escape(str(turn.get('content', '')))}"
        )
    out.append("")
    out.append("[b]Scores and groups[/b]")
    for key, value in d.columns.items():
        if key == "sample_id":
            continue
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        out.append(f"  {escape(key)}: {escape(shown)}")
    if d.zero_shot is not None:
        out += ["", "[b]CLIPPER zero-shot[/b]", f"  response: {escape(d.zero_shot)}"]
        if d.zero_shot_correct is not None:
            out.append(f"  judged {'correct (P)' if d.zero_shot_correct else 'wrong (W)'}")
    if d.fixed_by:
        out += ["", "[b]Probed as a query[/b] (demonstration -> answered correctly?)"]
        out += [f"  demo {escape(d.name(s))}: {'yes' if ok else 'no'}" for s, ok in d.fixed_by]
    if d.fixed:
        out += ["", "[b]As a demonstration[/b] (query -> fixed?)"]
        out += [f"  query {escape(d.name(s))}: {'yes' if ok else 'no'}" for s, ok in d.fixed]
    if d.neighbours:
        out += ["", "[b]Nearest in its cluster[/b] (cosine)"]
        out += [f"  sample {escape(d.name(s))}: {sim:.3f}" for s, sim in d.neighbours]
    if d.images:
        out += ["", "[b]Images[/b]"] + [f"  {escape(p)}" for p in d.images]
    return "\n".join(out)


class DetailScreen(ThresherScreen):
    HELP = (
        "## Sample detail\n\nThe image, the whole conversation, every score of the run; for CLIPPER "
        "the zero-shot response and the probe history, for OFA the nearest cluster neighbours. "
        "**k / d / u** decide this sample."
    )
    BINDINGS = [
        keys.back("detail"),
        *keys.decide("detail"),
    ]

    WORK_LABELS = {"detail": "loading the sample"}

    def __init__(self, view: RunView, rid: int) -> None:
        super().__init__()
        self.view, self.rid = view, rid
        self.detail: SampleDetail | None = None

    def compose(self) -> ComposeResult:
        yield Label(f"{self.view.run_id} · loading sample…", id="detail-title")
        with Horizontal(id="detail"):
            with Vertical(id="image-pane"):
                yield Label("", id="image-note")
            with VerticalScroll(id="detail-text"):
                yield Static("", id="detail-body")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#detail-text").focus()
        self.load()

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def load(self) -> None:
        detail = load_detail(self.view, self.rid)
        self.app.call_from_thread(self.show, detail)

    def worker_failed(self, group: str, error: BaseException | None) -> None:
        title = self.query_one("#detail-title", Label)
        title.update(Text(f"{self.view.run_id} · could not load the sample: {describe(error)}"))

    def show(self, detail: SampleDetail) -> None:
        self.detail = detail
        self.query_one("#detail-title", Label).update(
            f"{self.view.run_id} · sample {escape(detail.orig_id)}"
        )
        self.query_one("#detail-body", Static).update(render_detail(detail))
        pane = self.query_one("#image-pane", Vertical)
        first = next((p for p in detail.images if Path(p).is_file()), None)
        widget: Widget | None = image_widget(self.app.image_mode, first) if first else None
        if widget is None:
            reason = "no image file" if not first else f"image mode {self.app.image_mode}"
            self.query_one("#image-note", Label).update(f"[{reason}]")
        else:
            self.query_one("#image-note", Label).update(Path(first).name)
            pane.mount(widget)

    def action_decide(self, action: str) -> None:
        self.app.decide(self.view, [self.rid], action, "sample")
        if self.detail is not None:
            self.notify(f"{action}: sample {self.detail.orig_id}")

    def on_decision_applied(self, message: DecisionApplied) -> None:
        if message.run_id == self.view.run_id:
            self.load()
