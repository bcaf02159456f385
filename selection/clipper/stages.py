"""CLIPPER as job stages: zeroshot -> probe -> perplexity -> result (plus summary.json), on the job runner.

Every stage is resumable shard by shard. What a stage needs from an earlier one is recomputed
from that stage's shards (the probe assignment from the zero-shot split and the run seed), so a
killed-and-resumed run makes the same requests and writes the same outputs as an uninterrupted one.
"""

from __future__ import annotations

import math
from typing import Any

from selection.clipper.config import ClipperConfig, render_prompt
from selection.clipper.result import ResultStage
from selection.clipper.zeroshot import (
    EmptyReplies,
    Resources,
    ZeroShotStage,
    answer_and_judge,
    batched,
    turn,
    zero_shot_split,
)
from selection.jobs import RunContext
from selection.jobs.stage import Shard, derive_seed, row_shards


class ProbeStage:
    """Stage 2 (eq. 2-3): each P sample as a one-shot demonstration for m W queries; every probe logged.

    Shards cover whole demonstrations (`demos_per_shard` of them); a shard's start/stop count
    probes, so progress and ETA are in probes. Requests keep one demonstration's probes together.
    """

    name, unit = "probe", "probes"

    def __init__(self, res: Resources) -> None:
        self.res, self.config = res, res.config
        self._plan: Any = None
        self._row: dict[int, int] | None = None
        self.empty = EmptyReplies(self.name, self.config.max_empty_fraction)

    def probe_plan(self, ctx: RunContext) -> Any:
        if self._plan is None:
            from selection.clipper.assign import assign_probes

            ids, kn = zero_shot_split(ctx)
            c = self.config
            self._plan = assign_probes(ids[kn == "P"], ids[kn == "W"], c.m, c.assignment, ctx.seed)
        return self._plan

    def plan(self, ctx: RunContext) -> list[Shard]:
        p = self.probe_plan(ctx)
        step = self.config.demos_per_shard
        bounds = list(range(0, len(p.demos), step)) or [0]
        return [
            Shard(
                i,
                p.probes_before(a),
                p.probes_before(min(a + step, len(p.demos))),
                derive_seed(ctx.seed, self.name, i),
            )
            for i, a in enumerate(bounds)
        ]

    def run_shard(self, ctx: RunContext, shard: Shard) -> Any:
        import pyarrow as pa

        p = self.probe_plan(ctx)
        demo_id = p.demo_id[shard.start : shard.stop].tolist()
        query_id = p.query_id[shard.start : shard.stop].tolist()
        inp = ctx.input()
        if self._row is None:  # once per process: a shard only touches its own samples
            self._row = {sid: i for i, sid in enumerate(inp["sample_id"].to_pylist())}
        need = sorted({self._row[s] for s in demo_id + query_id})
        sub = inp.take(pa.array(need, pa.int64())).select(
            ["sample_id", "images", "question", "answer", "task"]
        )
        rec = {r["sample_id"]: r for r in sub.to_pylist()}
        reqs = []
        template = self.config.one_shot_prompt
        for d, q in zip(demo_id, query_id, strict=True):
            dr, qr = rec[d], rec[q]
            reqs.append(
                (
                    turn("user", render_prompt(template, dr["question"]), dr["images"]),
                    turn("assistant", dr["answer"]),
                    turn("user", render_prompt(template, qr["question"]), qr["images"]),
                )
            )
        targets = [rec[q] for q in query_id]
        responses, verdicts = answer_and_judge(ctx, self.res, reqs, targets, self.empty)
        return pa.table(
            {
                "demo_id": pa.array(demo_id, pa.int64()),
                "query_id": pa.array(query_id, pa.int64()),
                "response": pa.array(responses, pa.string()),
                "correct": pa.array([v.correct for v in verdicts], pa.bool_()),
                "rule": pa.array([v.rule for v in verdicts], pa.string()),
            }
        )


class PerplexityStage:
    """Teacher-forced perplexity of each ground-truth answer given image + question (answer tokens only)."""

    name, unit = "perplexity", "samples"

    def __init__(self, res: Resources) -> None:
        self.res, self.config = res, res.config
        self._excluded: list[str | None] | None = None

    def plan(self, ctx: RunContext) -> list[Shard]:
        return row_shards(ctx.input().num_rows, self.config.shard_size, ctx.seed, self.name)

    def run_shard(self, ctx: RunContext, shard: Shard) -> Any:
        import pyarrow as pa

        from selection.clipper.perplexity import log_perplexity
        from selection.engines import NotSupported

        rows = ctx.input_rows(shard).to_pylist()
        if self._excluded is None:
            self._excluded = ctx.read_stage("zeroshot")["excluded"].to_pylist()
        excluded = self._excluded[shard.start : shard.stop]
        ok = [r for r, e in zip(rows, excluded, strict=True) if e is None]
        reqs = [(turn("user", r["question"], r["images"]),) for r in ok]
        answers = [r["answer"] for r in ok]
        engine = self.res.engine(ctx)
        try:
            scores = batched(
                ctx,
                list(range(len(reqs))),
                self.res.call_size,
                lambda b: engine.answer_logprobs([reqs[i] for i in b], [answers[i] for i in b]),
            )
        except NotSupported as exc:
            ctx.log.warning("perplexity unavailable with this engine: %s", exc)
            scores = [(math.nan, 0)] * len(ok)
        by_id = {r["sample_id"]: s for r, s in zip(ok, scores, strict=True)}
        lp_sum: list[float | None] = []
        n_tok: list[int | None] = []
        lppl: list[float | None] = []
        for r in rows:
            s = by_id.get(r["sample_id"])
            if s is not None and s[1] > 0 and math.isfinite(s[0]):
                lp_sum.append(float(s[0]))
                n_tok.append(int(s[1]))
                lppl.append(log_perplexity(*s))
            else:
                lp_sum.append(None)
                n_tok.append(None)
                lppl.append(None)
        return pa.table(
            {
                "sample_id": pa.array([r["sample_id"] for r in rows], pa.int64()),
                "logprob_sum": pa.array(lp_sum, pa.float64()),
                "n_answer_tokens": pa.array(n_tok, pa.int32()),
                "log_ppl": pa.array(lppl, pa.float64()),
            }
        )


def build_stages(config: ClipperConfig) -> list[Any]:
    """The method's stages in order; one engine and judge are shared by all of them."""
    res = Resources(config)
    stages: list[Any] = [ZeroShotStage(res), ProbeStage(res)]
    if config.perplexity:
        stages.append(PerplexityStage(res))
    stages.append(ResultStage(config))
    return stages
