"""The middle-perplexity baseline the paper compares CLIPPER with ([16]): keep the middle band of log-ppl."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def middle_band(
    log_ppl: Sequence[float] | np.ndarray, sample_id: Sequence[int] | np.ndarray, size: int
) -> np.ndarray:
    """The middle-perplexity baseline: keep `size` samples around the median log-perplexity.

    Samples are ranked by (log_ppl, sample_id) so ties resolve the same way on every run;
    the band drops as many samples below it as above it (one more above when odd).
    Samples without a perplexity are never kept.
    """
    lp = np.asarray(log_ppl, float)
    ids = np.asarray(sample_id, np.int64)
    rows = np.flatnonzero(np.isfinite(lp))
    rows = rows[np.lexsort((ids[rows], lp[rows]))]
    k = max(0, min(int(size), len(rows)))
    lo = (len(rows) - k) // 2
    mask = np.zeros(len(lp), dtype=bool)
    mask[rows[lo : lo + k]] = True
    return mask
