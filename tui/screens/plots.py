"""Plots of a run (and, given several runs, the overlap of their selections) in the terminal."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Label, Static

from tui.data.plots import PlotData, plot_data
from tui.data.run_view import RunView
from tui.screens.base import ThresherScreen
from tui.widgets import keys, plots
from tui.worker_errors import describe


class PlotsScreen(ThresherScreen):
    CSS_PATH = "views.tcss"
    HELP = (
        "## Plots\n\nOFA runs: the confidence histogram of one cluster with the selection cut "
        "(**[ / ]** previous / next cluster), cluster sizes kept/dropped (your overrides "
        "included), and the clusters on a 2-D PCA map of a sample of the embeddings. CLIPPER "
        "runs: subset sizes per tau, the c(p) distribution, log perplexity per subset. With "
        "several runs: the Jaccard overlap matrix of their selections."
    )
    BINDINGS = [
        keys.back("plots"),
        Binding("left_square_bracket", "cluster(-1)", "Prev cluster", id="plots.prev"),
        Binding("right_square_bracket", "cluster(1)", "Next cluster", id="plots.next"),
    ]
    WORK_LABELS = {"plots": "plots"}

    @dataclass
    class Ready(Message):
        data: PlotData | None
        overlap: tuple[list[str], object] | None

    def __init__(self, views: list[RunView]) -> None:
        super().__init__()
        self.views = views
        self.data: PlotData | None = None
        self.overlap: tuple[list[str], object] | None = None
        self.cluster_index = 0

    def compose(self) -> ComposeResult:
        names = ", ".join(v.run_id for v in self.views)
        yield Label(f"Plots: {names}", id="run-header")
        with VerticalScroll(id="plots-body"):
            yield Static("computing…", id="plots")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#plots-body").focus()
        self.compute()

    @work(thread=True, exclusive=True, group="plots", exit_on_error=False)
    def compute(self) -> None:
        data = plot_data(self.views[0]) if len(self.views) == 1 else None
        overlap = None
        if len(self.views) > 1:
            from tui.data.compare import compare

            c = compare(self.views)
            overlap = ([s.name for s in c.selections], c.jaccard)
        self.post_message(self.Ready(data, overlap))

    def on_plots_screen_ready(self, message: Ready) -> None:
        self.data, self.overlap = message.data, message.overlap
        self.draw()

    def worker_failed(self, group: str, error: BaseException | None) -> None:
        self.query_one("#plots", Static).update(Text(f"could not plot: {describe(error)}"))

    def draw(self) -> None:
        width = max((self.size.width or 100) - 4, 40)
        h = 14
        parts: list = []
        d = self.data
        if d is not None and d.clusters is not None and d.clusters.ids:
            cs = d.clusters
            c = cs.ids[self.cluster_index % len(cs.ids)]
            parts.append(plots.confidence_hist(cs.confidence[c], cs.cut[c], c, width, h))
            parts.append(plots.cluster_sizes(cs.ids, cs.kept, cs.dropped, width, h))
            if d.pca is not None:
                parts.append(plots.pca_scatter(d.pca[0], d.pca[1], width, h + 4))
        if d is not None and d.subsets:
            parts.append(plots.grouped_bars(d.subsets, width, h))
            if d.c_p is not None:
                title = f"c(p): correct answers per demonstration ({len(d.c_p)} demonstrations)"
                parts.append(plots.histogram(d.c_p, title, "c(p)", width, h, bins=10))
            if d.ppl:
                parts.append(plots.multi_hist(d.ppl, "log perplexity per subset (tau=1)", width, h))
        if self.overlap is not None:
            parts.append(plots.overlap_matrix(*self.overlap))  # type: ignore[arg-type]
        if not parts:
            parts.append(Text("nothing to plot: the run has no clusters, subsets or selections"))
        self.query_one("#plots", Static).update(Group(*parts))

    def action_cluster(self, step: int) -> None:
        if self.data is not None and self.data.clusters is not None:
            self.cluster_index += step
            self.draw()
