"""CLIPPER's last stage: one `result` row per input sample, the coreset columns, and summary.json."""

from __future__ import annotations

import math
from typing import Any

from selection.clipper.config import TAUS, ClipperConfig, selection_names
from selection.clipper.zeroshot import zero_shot_split
from selection.jobs import RunContext
from selection.jobs.stage import Shard, single_shard

SUMMARY = "summary.json"
MID_PPL = "mid-ppl"


def outputs(config: ClipperConfig) -> dict[str, Any]:
    """run.json["outputs"]: how the store and the TUI read a CLIPPER run (see docs/clipper.md)."""
    selections = {name: name for name in selection_names()}
    if config.perplexity:
        selections[MID_PPL] = MID_PPL
    return {
        "table": "result",
        "groups": [{"column": f"subset_t{t}", "label": f"Subset (tau={t})"} for t in TAUS]
        + [{"column": "knowledge", "label": "Zero-shot (P / W)"}],
        "scores": ["log_ppl", "c_p", "n_probes"] if config.perplexity else ["c_p", "n_probes"],
        "selections": selections,
        "default_selection": config.default_selection,
        "summary": SUMMARY,
    }


class ResultStage:
    """Subsets (pure functions of the zero-shot and probe logs), mid-ppl baseline, Fig. 4 summary."""

    name, unit = "result", "samples"

    def __init__(self, config: ClipperConfig) -> None:
        self.config = config

    def plan(self, ctx: RunContext) -> list[Shard]:
        return single_shard(ctx.input().num_rows, ctx.seed, self.name)

    def run_shard(self, ctx: RunContext, shard: Shard) -> Any:
        import numpy as np
        import pyarrow as pa

        from selection.clipper.baselines import middle_band
        from selection.clipper.perplexity import summarize
        from selection.clipper.subsets import compute_subsets
        from store.runs import write_json_atomic

        c = self.config
        ids, kn = zero_shot_split(ctx)
        if ids.tolist() != ctx.input()["sample_id"].to_pylist():
            raise RuntimeError("zeroshot shards are not row-aligned with input.parquet")
        zs = ctx.read_stage("zeroshot")
        probe = ctx.read_stage("probe")
        s = compute_subsets(
            ids,
            kn,
            probe["demo_id"].to_numpy(),
            probe["query_id"].to_numpy(),
            probe["correct"].fill_null(False).to_numpy(zero_copy_only=False),
            unprobed_in_wu=c.unprobed_in_wu,
            wc_from_ptau=c.wc_from_ptau,
        )
        lp = np.full(len(ids), np.nan)
        if c.perplexity:
            col = ctx.read_stage("perplexity")["log_ppl"].to_pylist()
            lp = np.array([math.nan if v is None else v for v in col], dtype=float)
        selections = dict(s.selections)
        has_ppl = bool(np.isfinite(lp).any())
        if c.mid_ppl_match:
            mid_size = int(selections[c.mid_ppl_match].sum())
        else:  # a fraction of the dataset, like the paper's Random and mid-ppl rows
            mid_size = int(round(c.mid_ppl_fraction * len(ids)))
        if c.perplexity:
            selections[MID_PPL] = (
                middle_band(lp, ids, mid_size) if has_ppl else np.zeros(len(ids), bool)
            )
        is_p, is_w = kn == "P", kn == "W"
        empty = _check_empty(zs, probe, c.max_empty_fraction)
        if not is_p.any() or not is_w.any():
            ctx.log.warning(
                "zero-shot put %d samples in P and %d in W: with one side empty stage 2 had "
                "nothing to probe (a random or demo model? a judge that never matches?)",
                int(is_p.sum()),
                int(is_w.sum()),
            )
        groups: dict[str, dict[str, Any]] = {"knowledge": {"P": is_p, "W": is_w}}
        for tau in TAUS:
            groups[f"subsets_t{tau}"] = {
                lab: s.labels[tau] == lab for lab in ("P", "P_not", "W_c", "W_u", "unprobed")
            }
        groups["selections"] = selections
        summary = summarize(lp, groups, bins=c.hist_bins) if has_ppl else {"metric": "log_ppl"}
        summary.update(
            {
                "available": has_ppl,
                "n_input": len(ids),
                "counts": _counts(s, kn, selections),
                "zero_shot_accuracy": _rate(is_p.sum(), (is_p | is_w).sum()),
                "probes": len(probe),
                # W samples no demonstration was paired with (members of W_u, as in the paper)
                "unprobed": int((is_w & (s.n_probes == 0)).sum()),
                "empty_replies": empty,
                # what decided each verdict: rule -> correct / wrong / undecided
                "verdicts": {
                    "zeroshot": verdict_counts(zs["rule"], zs["correct"]),
                    "probe": verdict_counts(probe["rule"], probe["correct"]),
                },
                # verdicts the judge could not give (rules undecided and no LLM judge, or an
                # unparseable LLM reply): counted as wrong (not matched) and reported here
                "undecided": {
                    "zeroshot": sum(
                        c is None and e is None
                        for c, e in zip(
                            zs["correct"].to_pylist(), zs["excluded"].to_pylist(), strict=True
                        )
                    ),
                    "probe": probe["correct"].null_count,
                },
                "probe_accuracy": _rate(
                    sum(bool(x) for x in probe["correct"].to_pylist()), len(probe)
                ),
                "mid_ppl": {"reference": c.mid_ppl_reference, "size": mid_size}
                if c.perplexity
                else None,
                "params": c.to_dict(),
            }
        )
        # summary.json first: a present result shard then always has its summary beside it.
        write_json_atomic(ctx.run_dir / SUMMARY, summary)
        cols: dict[str, Any] = {
            "sample_id": pa.array(ids, pa.int64()),
            "zs_response": zs["response"],
            "zs_correct": zs["correct"],
            "excluded": zs["excluded"],
            "knowledge": pa.array(kn.tolist(), pa.string()),
            "c_p": pa.array([int(x) if x >= 0 else None for x in s.c_p], pa.int32()),
            "n_probes": pa.array([int(x) if x >= 0 else None for x in s.n_probes], pa.int32()),
            "fixed_by": pa.array(s.fixed_by, pa.list_(pa.int64())),
        }
        for tau in TAUS:
            cols[f"subset_t{tau}"] = pa.array(s.labels[tau].tolist(), pa.string())
        cols["log_ppl"] = pa.array(
            [None if not math.isfinite(v) else float(v) for v in lp], pa.float64()
        )
        for name, mask in selections.items():
            cols[name] = pa.array(np.asarray(mask, bool))
        return pa.table(cols)


def verdict_counts(rule: Any, correct: Any) -> dict[str, dict[str, int]]:
    """{rule: {"correct": n, "wrong": n, "undecided": n}} over one stage's verdict columns."""
    out: dict[str, dict[str, int]] = {}
    for r, v in zip(rule.to_pylist(), correct.to_pylist(), strict=True):
        if r is None:  # excluded sample: never judged
            continue
        key = "undecided" if v is None else "correct" if v else "wrong"
        row = out.setdefault(r, {"correct": 0, "wrong": 0, "undecided": 0})
        row[key] += 1
    return out


def _check_empty(zs: Any, probe: Any, limit: float) -> dict[str, int]:
    """Empty replies per stage; more than `limit` of the zero-shot replies empty fails the run
    (the stages already fail after 20 replies; this catches runs smaller than that)."""
    from store.errors import ThresherError

    judged = [
        r
        for r, e in zip(zs["response"].to_pylist(), zs["excluded"].to_pylist(), strict=True)
        if e is None
    ]
    out = {
        "zeroshot": sum(not (r or "").strip() for r in judged),
        "probe": sum(not (r or "").strip() for r in probe["response"].to_pylist()),
    }
    for stage, n, total in (
        ("zeroshot", out["zeroshot"], len(judged)),
        ("probe", out["probe"], len(probe)),
    ):
        if total and n > limit * total:
            raise ThresherError(
                f"clipper {stage}: {n} of {total} replies were empty (content null or blank), "
                f"more than --max-empty-fraction {limit:g}; the P/W split would be meaningless. "
                "Check the server's replies (docs/engines.md), then delete the run's "
                f"{stage}/ folder and rerun the same command."
            )
    return out


def _rate(num: Any, den: Any) -> float | None:
    return round(float(num) / float(den), 6) if den else None


def _counts(s: Any, kn: Any, selections: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: int((kn == k).sum()) for k in ("P", "W", "excluded")}
    for tau in TAUS:
        labels = s.labels[tau].tolist()
        out[f"t{tau}"] = {
            lab: labels.count(lab) for lab in ("P", "P_not", "W_c", "W_u", "unprobed")
        }
    out["selections"] = {name: int(mask.sum()) for name, mask in selections.items()}
    return out
