"""OFA core set: per cluster, the members within the rho-th percentile of distance to their centroid."""

from __future__ import annotations

import numpy as np


def core_set(labels: np.ndarray, distance: np.ndarray, k: int, rho: float) -> np.ndarray:
    """Boolean mask of core-set members (paper III-C, Eq. 4).

    The radius of cluster c is `np.percentile(distance[labels == c], rho)` (linear
    interpolation, numpy's default); a member is in the core set when its distance is <= that
    radius. Rows with label < 0 (excluded samples) are never in the core set.
    """
    if not 0.0 < rho <= 100.0:
        from store.errors import ThresherError

        raise ThresherError(f"--rho must be a percentile in (0, 100], got {rho}")
    mask = np.zeros(len(labels), dtype=bool)
    for c in range(k):
        members = np.flatnonzero(labels == c)
        if len(members) == 0:
            continue
        radius = np.percentile(distance[members], rho)
        mask[members] = distance[members] <= radius
    return mask
