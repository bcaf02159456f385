"""CLIPPER stage 1 (eq. 1) and what every answering stage shares: the engine and judge of a
worker process, the image check, batched generation with progress, judging, empty-reply counts.

ZeroShotStage answers each sample's first question greedily and judges it -> P / W;
`zero_shot_split` reads that split back from the stage's shards (stage 2 and the result use it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from selection.answering import EngineAndJudge
from selection.clipper.config import render_prompt
from selection.jobs import RunContext
from selection.jobs.stage import Shard, row_shards

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


def turn(role: str, text: str, images: Sequence[str] = ()) -> Any:
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


def batched(
    ctx: RunContext, items: Sequence[Any], size: int, call: Callable[[list[Any]], list[Any]]
) -> list[Any]:
    """Run `call` over consecutive batches, reporting progress after each one."""
    out: list[Any] = []
    for s in range(0, len(items), size):
        out.extend(call(list(items[s : s + size])))
        ctx.progress(len(out))
    return out


def judge_all(ctx: RunContext, res: Resources, questions, answers, responses, tasks) -> list[Any]:
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

    def note(self, ctx: RunContext, responses: Sequence[str | None], *, at_least: int) -> None:
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


def answer_and_judge(
    ctx: RunContext, res: Resources, reqs: list[Any], targets: list[dict], empty: EmptyReplies
) -> tuple[list[Any], list[Any]]:
    """Greedy replies to `reqs` in engine-sized batches, empty ones counted, each judged against
    its target row's question, answer and task."""
    gen = res.engine(ctx).generate
    mnt = res.config.max_new_tokens
    responses = batched(ctx, reqs, res.call_size, lambda b: gen(b, max_new_tokens=mnt))
    empty.note(ctx, responses, at_least=MIN_REPLIES_TO_FAIL)
    verdicts = judge_all(
        ctx,
        res,
        [r["question"] for r in targets],
        [r["answer"] for r in targets],
        responses,
        [r["task"] for r in targets],
    )
    return responses, verdicts


class ZeroShotStage:
    """Stage 1 (eq. 1): greedy zero-shot answer to each sample's first question, judged -> P / W."""

    name, unit = "zeroshot", "samples"

    def __init__(self, res: Resources) -> None:
        self.res, self.config = res, res.config
        self.empty = EmptyReplies(self.name, self.config.max_empty_fraction)

    def plan(self, ctx: RunContext) -> list[Shard]:
        return row_shards(ctx.input().num_rows, self.config.shard_size, ctx.seed, self.name)

    def run_shard(self, ctx: RunContext, shard: Shard) -> Any:
        import pyarrow as pa

        rows = ctx.input_rows(shard).to_pylist()
        problem = [image_problem(r["images"], r["flags"]) for r in rows]
        ok = [r for r, p in zip(rows, problem, strict=True) if p is None]
        template = self.config.zero_shot_prompt
        reqs = [(turn("user", render_prompt(template, r["question"]), r["images"]),) for r in ok]
        responses, verdicts = answer_and_judge(ctx, self.res, reqs, ok, self.empty)
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


def zero_shot_split(ctx: RunContext) -> tuple[Any, Any]:
    """(sample_id array, knowledge labels P/W/excluded) from the zeroshot shards."""
    import numpy as np

    from selection.clipper.subsets import knowledge_split

    zs = ctx.read_stage("zeroshot")
    ids = np.asarray(zs["sample_id"].to_pylist(), dtype=np.int64)
    kn = knowledge_split(
        zs["correct"].to_pylist(), [e is not None for e in zs["excluded"].to_pylist()]
    )
    return ids, kn
