"""Compare selections side by side: sizes, Jaccard overlap, perplexity histograms, cluster coverage, accuracies."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from store.catalog import Catalog
from tui.data.run_view import RunView
from tui.data.sql import rows


@dataclass
class Selection:
    name: str  # "<run>:<selection>"
    ids: np.ndarray  # sorted unique sample ids


@dataclass
class Comparison:
    selections: list[Selection]
    jaccard: np.ndarray  # square, selections x selections
    ppl_bins: np.ndarray | None = None  # histogram edges over log_ppl of the full set
    ppl_hist: dict[str, np.ndarray] = field(default_factory=dict)  # name -> counts per bin
    coverage: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (clusters hit, k)
    accuracy: list[tuple] = field(default_factory=list)  # rows of the catalog's evaluations table
    accuracy_columns: list[str] = field(default_factory=list)


def selections_of(view: RunView) -> list[Selection]:
    """The effective selection (with overrides) and every other named selection of a run."""
    out = [Selection(f"{view.run_id}:{view.default_selection}*", _ids(view, None))]
    for name in view.selections:
        if name != view.default_selection:
            out.append(Selection(f"{view.run_id}:{name}", _ids(view, name)))
    return out


def _ids(view: RunView, name: str | None) -> np.ndarray:
    return np.unique(view.selection_ids(name)["sample_id"].to_numpy())


def jaccard(sets: list[np.ndarray]) -> np.ndarray:
    n = len(sets)
    out = np.ones((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            inter = len(np.intersect1d(sets[i], sets[j], assume_unique=True))
            union = len(sets[i]) + len(sets[j]) - inter
            out[i, j] = out[j, i] = inter / union if union else 1.0
    return out


def compare(views: list[RunView], catalog: Catalog | None = None, bins: int = 12) -> Comparison:
    if not views:
        return Comparison([], np.zeros((0, 0)))
    sels = [Selection("full", np.unique(views[0].selection_ids("full")["sample_id"].to_numpy()))]
    for v in views:
        sels += selections_of(v)
    result = Comparison(sels, jaccard([s.ids for s in sels]))
    ppl_view = next((v for v in views if "log_ppl" in v.columns), None)
    if ppl_view is not None:
        found = ppl_view.column_values("log_ppl")
        ids = found["sample_id"].to_numpy()
        ppl = found["value"].to_numpy().astype(np.float64)
        if len(ppl):
            edges = np.histogram_bin_edges(ppl, bins=bins)
            result.ppl_bins = edges
            for s in sels:
                mask = np.isin(ids, s.ids, assume_unique=True)
                result.ppl_hist[s.name] = np.histogram(ppl[mask], bins=edges)[0]
    cluster_view = next((v for v in views if "cluster" in v.columns), None)
    if cluster_view is not None:
        # samples OFA left out of clustering (flagged) have cluster NULL: they belong to no cluster
        found = cluster_view.column_values("cluster")
        ids = found["sample_id"].to_numpy()
        clusters = found["value"].to_numpy()
        k = len(np.unique(clusters))
        for s in sels:
            mask = np.isin(ids, s.ids, assume_unique=True)
            result.coverage[s.name] = (len(np.unique(clusters[mask])), k)
    if catalog is not None:
        result.accuracy_columns, result.accuracy = evaluations(catalog)
    return result


def evaluations(catalog: Catalog) -> tuple[list[str], list[tuple]]:
    """The fine-tune issue's `evaluations` table, if this catalog has one yet."""
    with catalog.connect() as con:
        has = rows(
            con, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'evaluations'"
        )
        if not has or not has[0][0]:
            return [], []
        cur = con.execute("SELECT * FROM evaluations ORDER BY ALL LIMIT 200")
        cols = [d[0] for d in cur.description]
        return cols, cur.fetchall()
