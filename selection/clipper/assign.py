"""Probe assignment for CLIPPER stage 2: which W queries each P demonstration is paired with (seeded)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from store.errors import ThresherError

# Mixed into the run seed so the assignment stream never coincides with another seeded stream.
_ASSIGN_STREAM = 0xC11_9E5


@dataclass(frozen=True)
class ProbePlan:
    """Every (demonstration, query) pair, grouped by demonstration in the order demos were given.

    Grouping keeps one demonstration's probes contiguous, so they share a prompt prefix and an
    engine with a prefix cache (vLLM, SGLang) computes the demonstration's image and turn once.
    """

    demos: np.ndarray  # int64, the demonstration ids in order (all of P, even with no query)
    offsets: np.ndarray  # int64, len(demos) + 1: probes of demos[i] are [offsets[i], offsets[i+1])
    demo_id: np.ndarray  # int64, one per probe
    query_id: np.ndarray  # int64, one per probe

    def __len__(self) -> int:
        return int(self.demo_id.shape[0])

    def slice_demos(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(demo_id, query_id) of the probes of demos[start:stop] (a probe shard)."""
        a, b = int(self.offsets[start]), int(self.offsets[stop])
        return self.demo_id[a:b], self.query_id[a:b]

    def probes_before(self, demo_index: int) -> int:
        return int(self.offsets[demo_index])


def assign_probes(
    demos: Sequence[int], queries: Sequence[int], m: int, assignment: str, seed: int
) -> ProbePlan:
    """Pair each demonstration with min(m, |W|) distinct queries.

    random   - the paper: each demonstration draws its queries uniformly without replacement,
               independently of the others (a W sample can be drawn by none).
    balanced - walk W in seeded shuffled passes, handing each demonstration the next queries;
               probe counts per W sample differ by at most one, so none is unprobed once
               |P| * m >= |W|. A pass boundary that would repeat a query inside one demo's
               set swaps in a later query of the same pass, which keeps every pass a permutation.
    The result depends only on (demos, queries, m, assignment, seed): it is recomputed on
    resume instead of being stored.
    """
    if m < 1:
        raise ThresherError(f"clipper: m must be at least 1 (got {m})")
    d = np.asarray(demos, dtype=np.int64)
    q = np.asarray(queries, dtype=np.int64)
    k = min(int(m), int(q.shape[0]))
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, _ASSIGN_STREAM]))
    if assignment == "random":
        picks = _random(rng, len(d), len(q), k)
    elif assignment == "balanced":
        picks = _balanced(rng, len(d), len(q), k)
    else:
        raise ThresherError(f"clipper: assignment {assignment!r} is not random or balanced")
    offsets = np.arange(len(d) + 1, dtype=np.int64) * k
    return ProbePlan(
        demos=d,
        offsets=offsets,
        demo_id=np.repeat(d, k),
        query_id=q[picks].astype(np.int64) if len(picks) else np.zeros(0, np.int64),
    )


def _random(rng: np.random.Generator, n_demos: int, n_queries: int, k: int) -> np.ndarray:
    if k == 0 or n_demos == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate(
        [rng.choice(n_queries, size=k, replace=False) for _ in range(n_demos)]
    ).astype(np.int64)


def _balanced(rng: np.random.Generator, n_demos: int, n_queries: int, k: int) -> np.ndarray:
    if k == 0 or n_demos == 0:
        return np.zeros(0, dtype=np.int64)
    out = np.empty(n_demos * k, dtype=np.int64)
    cur = rng.permutation(n_queries)
    pos = 0
    for i in range(n_demos):
        chosen: set[int] = set()
        for j in range(k):
            if pos == n_queries:
                cur = rng.permutation(n_queries)
                pos = 0
            if int(cur[pos]) in chosen:
                # Only at a pass boundary: a later element of this pass not yet chosen exists
                # because the pass holds all n_queries >= k ids.
                swap = next(t for t in range(pos + 1, n_queries) if int(cur[t]) not in chosen)
                cur[pos], cur[swap] = cur[swap], cur[pos]
            chosen.add(int(cur[pos]))
            out[i * k + j] = cur[pos]
            pos += 1
    return out
