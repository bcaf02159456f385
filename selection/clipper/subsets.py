"""CLIPPER's subsets and coresets as pure functions of the zero-shot split and the probe log.

Labels of the `subset_t1` / `subset_t2` groups (one per sample, for that tau), as the paper
defines them (eq. 4-7, checked against Table I: |W_c| and |W_u| are the same at tau = 1 and 2):
  P         parameter knowledge with c(p) >= tau (P_tau, eq. 4)
  P_not     parameter knowledge with c(p) < tau (P_not, eq. 5: excluded from every coreset)
  W_c       world knowledge made correct by at least one demonstration from P (eq. 6); the
            same samples for every tau
  W_u       the rest of W (eq. 7: W_u = W minus W_c), including W samples no demonstration was
            paired with (`n_probes` = 0; summary.json counts them apart as `unprobed`)
  unprobed  only with the deviation unprobed_in_wu=False: unprobed W samples kept out of W_u
  excluded  not judged: the sample's image is missing or corrupt (in neither P nor W)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from selection.clipper.config import TAUS
from store.errors import ThresherError

P, P_NOT, W_C, W_U, UNPROBED, EXCLUDED = "P", "P_not", "W_c", "W_u", "unprobed", "excluded"
LABELS = (P, P_NOT, W_C, W_U, UNPROBED, EXCLUDED)


@dataclass
class Subsets:
    """Everything stage 2 decides, row-aligned with the run's input."""

    sample_id: np.ndarray  # int64
    knowledge: np.ndarray  # str: "P" | "W" | "excluded"
    c_p: np.ndarray  # int64, correct probes per demonstration; -1 for samples not in P
    n_probes: np.ndarray  # int64, probes per query; -1 for samples not in W
    fixed_by: list[list[int]]  # per sample: demo ids whose probe answered it correctly (W only)
    labels: dict[int, np.ndarray] = field(default_factory=dict)  # tau -> str labels
    selections: dict[str, np.ndarray] = field(default_factory=dict)  # "P1+W" -> bool mask

    def members(self, tau: int, label: str) -> np.ndarray:
        return self.sample_id[self.labels[tau] == label]


def knowledge_split(correct: Sequence[bool | None], excluded: Sequence[bool]) -> np.ndarray:
    """Stage 1 (eq. 1): matched -> P, not matched (or undecided by the judge) -> W, bad image -> excluded."""
    out = np.where(_truthy(correct), "P", "W").astype(object)
    out[np.asarray(excluded, dtype=bool)] = EXCLUDED
    return out


def _truthy(values: Sequence[bool | None]) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == bool:
        return arr
    return np.fromiter((bool(v) for v in arr), dtype=bool, count=len(arr))


def _rows(ids: np.ndarray, wanted: np.ndarray, what: str) -> np.ndarray:
    """Row of each wanted id in ids (ids unique); an unknown id means the probe log is not this run's."""
    if len(wanted) == 0:
        return np.zeros(0, dtype=np.int64)
    # Look up each distinct id once: probe logs repeat ids m times, and sorted needles are fast.
    uniq, inverse = np.unique(wanted, return_inverse=True)
    order = np.argsort(ids, kind="stable")
    found = np.zeros(len(uniq), dtype=bool)
    pos = np.zeros(len(uniq), dtype=np.int64)
    if len(ids):
        sorted_ids = ids[order]
        pos = np.clip(np.searchsorted(sorted_ids, uniq), 0, len(ids) - 1)
        found = sorted_ids[pos] == uniq
    if not found.all():
        bad = uniq[~found][:3].tolist()
        raise ThresherError(f"clipper: probe log names {what} ids {bad} that are not in the input")
    return order[pos][inverse.reshape(-1)]


def compute_subsets(
    sample_id: Sequence[int],
    knowledge: Sequence[str],
    probe_demo: Sequence[int],
    probe_query: Sequence[int],
    probe_correct: Sequence[bool | None],
    *,
    taus: Sequence[int] = TAUS,
    unprobed_in_wu: bool = True,
    wc_from_ptau: bool = False,
) -> Subsets:
    """c(p) (eq. 2-3), P_tau / P_not (eq. 4-5), W_c / W_u (eq. 6-7) and the coresets per tau.

    Two deviations from the paper, off by default: `wc_from_ptau` counts only demonstrations
    from P_tau as fixing a W sample (W_c then shrinks as tau grows); `unprobed_in_wu=False`
    keeps never-probed W samples out of W_u (labelled `unprobed`)."""
    ids = np.asarray(sample_id, dtype=np.int64)
    kn = np.asarray(knowledge, dtype=object)
    n = len(ids)
    demo = np.asarray(probe_demo, dtype=np.int64)
    query = np.asarray(probe_query, dtype=np.int64)
    ok = _truthy(probe_correct)  # None (undecided) = not fixed
    if not (len(demo) == len(query) == len(ok)):
        raise ThresherError("clipper: probe log columns differ in length")
    d_rows, q_rows = _rows(ids, demo, "demonstration"), _rows(ids, query, "query")
    is_p, is_w = kn == "P", kn == "W"
    if len(demo) and not (is_p[d_rows].all() and is_w[q_rows].all()):
        raise ThresherError(
            "clipper: the probe log pairs samples outside P x W; it belongs to another "
            "zero-shot result (delete the run's probe/ folder to redo stage 2)"
        )
    c_p = np.bincount(d_rows[ok], minlength=n).astype(np.int64)
    n_probes = np.bincount(q_rows, minlength=n).astype(np.int64)
    qr, dm = q_rows[ok], demo[ok]
    order = np.lexsort((dm, qr))
    qr, dm = qr[order], dm[order]
    bounds = np.searchsorted(qr, np.arange(n + 1))
    fixed_by = [dm[bounds[i] : bounds[i + 1]].tolist() for i in range(n)]
    out = Subsets(
        sample_id=ids,
        knowledge=kn,
        c_p=np.where(is_p, c_p, -1),
        n_probes=np.where(is_w, n_probes, -1),
        fixed_by=fixed_by,
    )
    fixed_by_p = np.zeros(n, dtype=bool)
    fixed_by_p[q_rows[ok]] = True  # every demonstration is in P (checked above)
    probed = n_probes > 0
    for tau in taus:
        in_ptau = is_p & (c_p >= tau)
        fixed = fixed_by_p
        if wc_from_ptau:
            fixed = np.zeros(n, dtype=bool)
            fixed[q_rows[ok & in_ptau[d_rows]]] = True
        labels = np.full(n, EXCLUDED, dtype=object)
        labels[is_p] = np.where(in_ptau[is_p], P, P_NOT)
        rest = W_U if unprobed_in_wu else np.where(probed[is_w], W_U, UNPROBED)
        labels[is_w] = np.where(fixed[is_w], W_C, rest)
        out.labels[tau] = labels
        out.selections[f"P{tau}+W"] = in_ptau | is_w
        out.selections[f"P{tau}+Wc"] = in_ptau | (labels == W_C)
        out.selections[f"P{tau}+Wu"] = in_ptau | (labels == W_U)
    return out
