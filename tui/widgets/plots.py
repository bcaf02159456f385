"""Terminal plots as Rich renderables: plotext (5.x) draws into a string, Rich parses its ANSI.

plotext keeps one global figure, so every drawing holds `_LOCK` (workers may draw at once).
The overlap matrix is a Rich table shaded by value, which reads better than a 4x4 bitmap.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
from rich.table import Table
from rich.text import Text

_LOCK = threading.Lock()
COLORS = ("blue", "red", "green", "orange", "magenta", "cyan", "gray", "yellow")


def _draw(width: int, height: int, title: str, body) -> Text:
    import plotext as plt

    with _LOCK:
        plt.clear_figure()
        plt.plotsize(max(width, 30), max(height, 8))
        plt.theme("pro")
        plt.title(title)
        body(plt)
        out = plt.build()
        plt.clear_figure()
    return Text.from_ansi(out)


def confidence_hist(conf: np.ndarray, cut: float | None, cluster: int, width: int, height: int):
    """Confidence of one cluster's members with the selection cut (kept: at or below it)."""
    conf = conf[~np.isnan(conf)]
    label = f"cut {cut:.3f}" if cut is not None else "nothing kept"
    title = f"cluster {cluster}: confidence ({len(conf)} samples, {label})"

    def body(plt):
        if len(conf):
            plt.hist(conf.tolist(), bins=20, color="blue")
        if cut is not None:
            plt.vline(cut, "red")
        plt.xlabel("max softmax probability (kept <= cut)")

    return _draw(width, height, title, body)


def cluster_sizes(
    ids: Sequence[int], kept: Sequence[int], dropped: Sequence[int], width: int, height: int
):
    def body(plt):
        plt.stacked_bar(
            [str(i) for i in ids],
            [list(kept), list(dropped)],
            labels=["kept", "dropped"],
            color=["green", "red"],
        )
        plt.xlabel("cluster")

    return _draw(width, height, "cluster sizes: kept / dropped (your overrides included)", body)


def pca_scatter(points: np.ndarray, clusters: np.ndarray, width: int, height: int):
    def body(plt):
        for n, c in enumerate(sorted(set(clusters.tolist()))):
            sel = clusters == c
            plt.scatter(
                points[sel, 0].tolist(),
                points[sel, 1].tolist(),
                marker="dot",
                color=COLORS[n % len(COLORS)],
                label=str(c) if n < 8 else None,
            )

    return _draw(
        width,
        height,
        f"clusters on the first two principal components ({len(points)} samples)",
        body,
    )


def grouped_bars(counts: dict[str, dict[str, int]], width: int, height: int):
    """CLIPPER subset sizes, one bar group per subset, one bar per tau column."""
    names = sorted({k for c in counts.values() for k in c})
    cols = list(counts)

    def body(plt):
        plt.multiple_bar(names, [[counts[c].get(n, 0) for n in names] for c in cols], labels=cols)

    return _draw(width, height, "CLIPPER subsets per tau", body)


def histogram(values: np.ndarray, title: str, xlabel: str, width: int, height: int, bins: int = 20):
    def body(plt):
        if len(values):
            plt.hist(values.tolist(), bins=bins, color="cyan")
        plt.xlabel(xlabel)

    return _draw(width, height, title, body)


def multi_hist(series: dict[str, np.ndarray], title: str, width: int, height: int, bins: int = 20):
    def body(plt):
        for n, (name, values) in enumerate(series.items()):
            if len(values):
                plt.hist(values.tolist(), bins=bins, label=name, color=COLORS[n % len(COLORS)])

    return _draw(width, height, title, body)


def overlap_matrix(names: Sequence[str], matrix: np.ndarray) -> Table:
    """Jaccard overlap of selections, each cell shaded from dark (0) to bright (1)."""
    table = Table(title="Overlap (Jaccard) of the selections", expand=False)
    table.add_column("")
    for i in range(len(names)):
        table.add_column(str(i), justify="right")
    for i, name in enumerate(names):
        cells = []
        for v in matrix[i]:
            level = int(40 + 180 * float(v))
            fg = "black" if v > 0.5 else "white"
            cells.append(Text(f"{v:.2f}", style=f"{fg} on rgb({level // 3},{level // 2},{level})"))
        table.add_row(f"{i} {name}", *cells)
    return table
