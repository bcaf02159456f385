"""Compare: selections of one or more runs side by side (size, Jaccard, perplexity bars, cluster coverage, accuracy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Label, Static

from tui.data.compare import Comparison, compare
from tui.data.run_view import RunView
from tui.screens.base import ThresherScreen
from tui.screens.monitor import sparkline
from tui.widgets import keys
from tui.widgets.tables import KeyFooter
from tui.worker_errors import describe


def render_comparison(c: Comparison) -> Group:
    parts: list = []
    size = Table(title="Selections", expand=False)
    for col in ("#", "selection", "size", "clusters covered"):
        size.add_column(col)
    for i, s in enumerate(c.selections):
        cov = c.coverage.get(s.name)
        size.add_row(str(i), s.name, str(len(s.ids)), f"{cov[0]}/{cov[1]}" if cov else "-")
    parts.append(size)
    jac = Table(title="Jaccard overlap", expand=False)
    jac.add_column("")
    for i in range(len(c.selections)):
        jac.add_column(str(i), justify="right")
    for i, row in enumerate(c.jaccard):
        jac.add_row(str(i), *(f"{v:.2f}" for v in row))
    parts.append(jac)
    if c.ppl_bins is not None:
        lo, hi = float(c.ppl_bins[0]), float(c.ppl_bins[-1])
        hist = Table(title=f"log perplexity histogram ({lo:.2f} .. {hi:.2f})", expand=False)
        hist.add_column("selection")
        hist.add_column("distribution")
        for name, counts in c.ppl_hist.items():
            top = float(np.max(counts)) if len(counts) else 0.0
            hist.add_row(
                name, sparkline([float(x) for x in counts], 0.0, top or 1.0, width=len(counts))
            )
        parts.append(hist)
    else:
        parts.append(Text("perplexity: no run here has log_ppl"))
    if c.accuracy:
        acc = Table(title="Fine-tune evaluations", expand=False)
        for col in c.accuracy_columns:
            acc.add_column(col)
        for r in c.accuracy:
            acc.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r))
        parts.append(acc)
    else:
        parts.append(Text("accuracy: no evaluations in the catalog yet"))
    return Group(*parts)


class CompareScreen(ThresherScreen):
    HELP = (
        "## Compare\n\nEvery selection of the runs (the first of each run, marked *, includes your "
        "overrides) against the full dataset: size, pairwise Jaccard overlap, log-perplexity "
        "histograms (when a CLIPPER run has them), cluster coverage (when an OFA run is here), "
        "and fine-tune accuracies once evaluations exist."
    )
    BINDINGS = [
        keys.back("compare"),
        Binding("p", "plots", "Plots", id="compare.plots", tooltip="The overlap matrix, shaded"),
    ]
    WORK_LABELS = {"compare": "compare"}

    @dataclass
    class Ready(Message):
        comparison: Comparison

    def __init__(self, views: list[RunView]) -> None:
        super().__init__()
        self.views = views
        self.comparison: Comparison | None = None

    def compose(self) -> ComposeResult:
        names = ", ".join(v.run_id for v in self.views) or "no runs with a result"
        yield Label(f"Compare {names}", id="run-header")
        with VerticalScroll(id="compare-body"):
            yield Static("computing…", id="compare-table")
        yield KeyFooter()

    def action_plots(self) -> None:
        self.app.open_plots([v.run_id for v in self.views])

    def on_mount(self) -> None:
        self.query_one("#compare-body").focus()
        self.compute()

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False)
    def compute(self) -> None:
        self.post_message(self.Ready(compare(self.views, self.app.catalog)))

    def on_compare_screen_ready(self, message: Ready) -> None:
        self.comparison = message.comparison
        self.query_one("#compare-table", Static).update(render_comparison(message.comparison))

    def worker_failed(self, group: str, error: BaseException | None) -> None:
        self.query_one("#compare-table", Static).update(
            Text(f"could not compare: {describe(error)}")
        )
