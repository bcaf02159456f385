"""Ground-truth answer perplexity summaries per CLIPPER subset vs. the whole dataset (the paper's Fig. 4).

Everything here works on log-perplexity (mean negative log-likelihood per answer token), where
the distributions the paper plots are well spread; exp() of a quantile is its perplexity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def log_perplexity(logprob_sum: float, n_tokens: int) -> float:
    """Mean NLL per answer token; NaN when the answer has no tokens (nothing to score)."""
    return -float(logprob_sum) / n_tokens if n_tokens > 0 else math.nan


def wasserstein1(a: np.ndarray, b: np.ndarray) -> float:
    """Earth mover's distance between two empirical 1-D distributions (integral of |F_a - F_b|)."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    if len(a) == 0 or len(b) == 0:
        return math.nan
    grid = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(a, grid[:-1], side="right") / len(a)
    fb = np.searchsorted(b, grid[:-1], side="right") / len(b)
    return float(np.sum(np.abs(fa - fb) * np.diff(grid)))


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    if len(a) == 0 or len(b) == 0:
        return math.nan
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / len(a)
    fb = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(fa - fb)))


def histogram_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Shared bin edges over the whole dataset's range, so subset histograms overlay (Fig. 4)."""
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return np.linspace(0.0, 1.0, bins + 1)
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def _num(x: float) -> float | None:
    """JSON has no NaN: an undefined statistic is written as null."""
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def describe(values: np.ndarray, whole: np.ndarray, edges: np.ndarray) -> dict:
    """n, mean, std, quantiles, histogram (counts + density on shared edges), W1 and KS to whole."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    counts, _ = np.histogram(v, bins=edges)
    width = np.diff(edges)
    density = counts / (len(v) * width) if len(v) else np.zeros_like(width)
    qs = np.quantile(v, QUANTILES) if len(v) else [math.nan] * len(QUANTILES)
    return {
        "n": int(len(v)),
        "mean": _num(float(v.mean()) if len(v) else math.nan),
        "std": _num(float(v.std()) if len(v) else math.nan),
        "quantiles": {f"q{int(q * 100):02d}": _num(x) for q, x in zip(QUANTILES, qs, strict=True)},
        "mean_ppl": _num(float(np.exp(v).mean()) if len(v) else math.nan),
        "hist": counts.astype(int).tolist(),
        "density": [_num(x) for x in density],
        "wasserstein1": _num(wasserstein1(v, whole)),
        "ks": _num(ks_statistic(v, whole)),
    }


def summarize(
    log_ppl: Sequence[float] | np.ndarray,
    groups: Mapping[str, Mapping[str, np.ndarray]],
    *,
    bins: int = 30,
) -> dict:
    """summary.json's body: the whole distribution plus one description per masked group.

    `groups` maps a section name ("knowledge", "subsets_t1", "selections", ...) to
    {name: bool mask row-aligned with log_ppl}. Samples without a perplexity (excluded,
    empty answer) count in no distribution.
    """
    lp = np.asarray(log_ppl, float)
    finite = np.isfinite(lp)
    whole = lp[finite]
    edges = histogram_edges(lp, bins)
    out: dict = {
        "metric": "log_ppl",
        "definition": "mean negative log-likelihood per ground-truth answer token, "
        "teacher-forced on image + question; perplexity = exp(log_ppl)",
        "edges": [_num(e) for e in edges],
        "whole": describe(whole, whole, edges),
    }
    for section, masks in groups.items():
        out[section] = {
            name: describe(lp[np.asarray(mask, bool) & finite], whole, edges)
            for name, mask in masks.items()
        }
    return out
