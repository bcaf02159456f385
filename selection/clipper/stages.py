"""CLIPPER as job stages: zeroshot -> probe -> perplexity -> result (plus summary.json), on the job runner.

Every stage is resumable shard by shard. What a stage needs from an earlier one is recomputed
from that stage's shards (the probe assignment from the zero-shot split and the run seed), so a
killed-and-resumed run makes the same requests and writes the same outputs as an uninterrupted one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from selection.clipper.config import ClipperConfig, render_prompt
from selection.engines.resources import EngineAndJudge
from selection.jobs.stage import Shard, derive_seed, row_shards

EXCLUDE_FLAGS = ("missing_image", "corrupt_image")
# A stage fails on empty replies only after this many replies (one odd reply is not a broken server).
MIN_REPLIES_TO_FAIL = 20


class Resources(EngineAndJudge):
    """The engine and judge of one worker process, loaded on first use and shared by all stages."""

    samples_per_prompt = 2  # a one-shot probe shows the demonstration's and the query's images

    @property
    def call_size(self) -> int:
        """Requests per engine call. transformers batches exactly this many; a server (openai)
        or vLLM gets a whole shard at once, so its own concurrency / continuous batching fills
        the GPU instead of waiting on `batch_size` requests at a time."""
        c = self.config
        return c.batch_size if c.engine == "transformers" else max(c.shard_size, c.batch_size)


def _turn(role: str, text: str, images: Sequence[str] = ()) -> Any:
    from selection.engines.base import Turn

    return Turn(role, text, tuple(images))


def image_problem(images: Sequence[str], flags: Sequence[str]) -> str | None:
    """Why a sample cannot be shown to the model (missing/corrupt image), or None when it can."""
    for flag in EXCLUDE_FLAGS:
        if flag in (flags or ()):
            return flag
    from PIL import Image

    for path in images or ():
        if not os.path.isfile(path):
            return "missing_image"
        try:
            with Image.open(path) as im:
                im.verify()
        except Exception:  # PIL raises many types for a damaged file; all mean the same here
            return "corrupt_image"
    return None


def _batched(
    ctx: Any, items: Sequence[Any], size: int, call: Callable[[list[Any]], list[Any]]
) -> list[Any]:
    """Run `call` over consecutive batches, reporting progress after each one."""
    out: list[Any] = []
    for s in range(0, len(items), size):
        out.extend(call(list(items[s : s + size])))
        ctx.progress(len(out))
    return out


def _judge_all(ctx: Any, res: Resources, questions, answers, responses, tasks) -> list[Any]:
    from selection.judges import JudgeItem

    items = [
        JudgeItem(q, (a,), r, t)
        for q, a, r, t in zip(questions, answers, responses, tasks, strict=True)
    ]
    if not items:
        return []
    judge = res.judge(ctx)
    verdicts = judge.judge(items)
    ctx.log.info("judge %s after this shard: %s", judge.name, judge.stats())
    return verdicts


class EmptyReplies:
    """Counts a stage's empty replies (`content: null`, blanks) in progress.jsonl and the job log,
    and fails the stage once more than `max_empty_fraction` of its replies are empty."""

    def __init__(self, stage: str, limit: float) -> None:
        self.stage, self.limit = stage, limit
        self.empty = self.replies = 0

    def note(self, ctx: Any, responses: Sequence[str | None], *, at_least: int) -> None:
        from store.errors import ThresherError

        n = sum(1 for r in responses if not (r or "").strip())
        self.empty += n
        self.replies += len(responses)
        if n:
            ctx.emit("empty_replies", empty=self.empty, replies=self.replies)
            ctx.log.warning(
                "%s: %d of %d replies empty so far", self.stage, self.empty, self.replies
            )
        if self.replies >= at_least and self.empty > self.limit * self.replies:
            raise ThresherError(
                f"clipper {self.stage}: {self.empty} of {self.replies} replies were empty "
                f"(content null or blank), more than --max-empty-fraction {self.limit:g}: the "
                "model returned no text, so every sample would land in W. Check the server "
                "(chat template, a reasoning model that answers in reasoning_content, "
                "--max-new-tokens), then rerun the same command to resume."
            )


class ZeroShotStage:
    """Stage 1 (eq. 1): greedy zero-shot answer to each sample's first question, judged -> P / W."""

    name, unit = "zeroshot", "samples"

    def __init__(self, res: Resources) -> None:
        self.res, self.config = res, res.config
        self.empty = EmptyReplies(self.name, self.config.max_empty_fraction)

    def plan(self, ctx: Any) -> list[Shard]:
        return row_shards(ctx.input().num_rows, self.config.shard_size, ctx.seed, self.name)

    def run_shard(self, ctx: Any, shard: Shard) -> Any:
        import pyarrow as pa

        rows = ctx.input_rows(shard).to_pylist()
        problem = [image_problem(r["images"], r["flags"]) for r in rows]
        ok = [r for r, p in zip(rows, problem, strict=True) if p is None]
        template = self.config.zero_shot_prompt
        reqs = [(_turn("user", render_prompt(template, r["question"]), r["images"]),) for r in ok]
        gen = self.res.engine(ctx).generate
        mnt = self.config.max_new_tokens
        responses = _batched(ctx, reqs, self.res.call_size, lambda b: gen(b, max_new_tokens=mnt))
        self.empty.note(ctx, responses, at_least=MIN_REPLIES_TO_FAIL)
        verdicts = _judge_all(
            ctx,
            self.res,
            [r["question"] for r in ok],
            [r["answer"] for r in ok],
            responses,
            [r["task"] for r in ok],
        )
        by_id = {r["sample_id"]: (s, v) for r, s, v in zip(ok, responses, verdicts, strict=True)}
        out: dict[str, list] = {k: [] for k in ("sample_id", "response", "correct", "rule")}
        for r in rows:
            s, v = by_id.get(r["sample_id"], (None, None))
            out["sample_id"].append(r["sample_id"])
            out["response"].append(s)
            out["correct"].append(None if v is None else v.correct)
            out["rule"].append(None if v is None else v.rule)
        out["excluded"] = problem
        return pa.table(out, schema=ZEROSHOT_SCHEMA())


def ZEROSHOT_SCHEMA() -> Any:  # noqa: N802 - a constant built lazily (pyarrow import)
    import pyarrow as pa

    return pa.schema(
        [
            ("sample_id", pa.int64()),
            ("response", pa.string()),
            ("correct", pa.bool_()),
            ("rule", pa.string()),
            ("excluded", pa.string()),
        ]
    )


def zero_shot_split(ctx: Any) -> tuple[Any, Any]:
    """(sample_id array, knowledge labels P/W/excluded) from the zeroshot shards."""
    import numpy as np

    from selection.clipper.subsets import knowledge_split

    zs = ctx.read_stage("zeroshot")
    ids = np.asarray(zs["sample_id"].to_pylist(), dtype=np.int64)
    kn = knowledge_split(
        zs["correct"].to_pylist(), [e is not None for e in zs["excluded"].to_pylist()]
    )
    return ids, kn


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

    def probe_plan(self, ctx: Any) -> Any:
        if self._plan is None:
            from selection.clipper.assign import assign_probes

            ids, kn = zero_shot_split(ctx)
            c = self.config
            self._plan = assign_probes(ids[kn == "P"], ids[kn == "W"], c.m, c.assignment, ctx.seed)
        return self._plan

    def plan(self, ctx: Any) -> list[Shard]:
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

    def run_shard(self, ctx: Any, shard: Shard) -> Any:
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
                    _turn("user", render_prompt(template, dr["question"]), dr["images"]),
                    _turn("assistant", dr["answer"]),
                    _turn("user", render_prompt(template, qr["question"]), qr["images"]),
                )
            )
        gen = self.res.engine(ctx).generate
        mnt = self.config.max_new_tokens
        responses = _batched(ctx, reqs, self.res.call_size, lambda b: gen(b, max_new_tokens=mnt))
        self.empty.note(ctx, responses, at_least=MIN_REPLIES_TO_FAIL)
        verdicts = _judge_all(
            ctx,
            self.res,
            [rec[q]["question"] for q in query_id],
            [rec[q]["answer"] for q in query_id],
            responses,
            [rec[q]["task"] for q in query_id],
        )
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

    def plan(self, ctx: Any) -> list[Shard]:
        return row_shards(ctx.input().num_rows, self.config.shard_size, ctx.seed, self.name)

    def run_shard(self, ctx: Any, shard: Shard) -> Any:
        import pyarrow as pa

        from selection.clipper.perplexity import log_perplexity
        from selection.engines import NotSupported

        rows = ctx.input_rows(shard).to_pylist()
        if self._excluded is None:
            self._excluded = ctx.read_stage("zeroshot")["excluded"].to_pylist()
        excluded = self._excluded[shard.start : shard.stop]
        ok = [r for r, e in zip(rows, excluded, strict=True) if e is None]
        reqs = [(_turn("user", r["question"], r["images"]),) for r in ok]
        answers = [r["answer"] for r in ok]
        engine = self.res.engine(ctx)
        try:
            scores = _batched(
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
    from selection.clipper.result import ResultStage

    res = Resources(config)
    stages: list[Any] = [ZeroShotStage(res), ProbeStage(res)]
    if config.perplexity:
        stages.append(PerplexityStage(res))
    stages.append(ResultStage(config))
    return stages
