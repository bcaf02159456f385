"""Evaluation as a job: answer a held-out dataset with CLIPPER's engines and judges, then record
the accuracy (overall and per task family) in the catalog, linked to the adapter's selection."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selection.answering import EngineAndJudge, EngineSettings
from selection.config import param
from selection.jobs.stage import Shard, row_shards
from store.errors import ThresherError

METHOD = "eval"


@dataclass
class EvalConfig(EngineSettings):
    """Answer every sample's first question greedily and judge it against the reference answer."""

    adapter: str | None = param(
        None,
        "LoRA adapter folder from `thresher train`; empty = the base model (the zero-shot row).",
        metavar="PATH",
    )
    max_new_tokens: int = param(32, "Greedy decoding budget per answer.")
    batch_size: int = param(8, "transformers: requests per forward batch.")
    shard_size: int = param(128, "Samples per shard: the unit of resume.")
    limit: int | None = param(
        None, "Evaluate a seeded subset of N samples; recorded with the result.", metavar="N"
    )
    provenance: dict[str, Any] = param(
        {},
        "Read from the adapter's training summary at launch: fine-tune run, selection, n_train, time.",
        cli=False,
    )

    def validate(self) -> EvalConfig:
        self.validate_engine("eval")
        if self.adapter and self.engine == "vllm":
            raise ThresherError(
                "--adapter with --engine vllm is not supported; use --engine transformers, or "
                "serve it (`vllm serve BASE --enable-lora --lora-modules NAME=ADAPTER`) and use "
                "--engine openai --model NAME --adapter ADAPTER"
            )
        return self


def base_model_mismatch(model: str, prov: dict[str, Any]) -> str | None:
    """A warning when --model is not the model the adapter was trained on (None when it is)."""
    base = prov.get("base_model")
    if not base:
        return None

    def norm(m: str) -> str:
        p = Path(m).expanduser()
        return str(p.resolve()) if p.exists() else m

    if norm(model) == norm(base):
        return None
    return (
        f"warning: the adapter was trained on {base}, not {model}; accuracy may be meaningless "
        "unless they are the same weights"
    )


def provenance(adapter: str | None) -> dict[str, Any]:
    """What the adapter learned from, from its training summary (empty for a foreign adapter)."""
    if not adapter:
        return {}
    from selection.finetune.train import read_training_summary

    path = Path(adapter).expanduser().resolve()
    if not (path / "adapter_config.json").exists():
        raise ThresherError(
            f"{path} is not a LoRA adapter folder (no adapter_config.json); pass the `adapter` "
            "folder of a fine-tune run"
        )
    s = read_training_summary(path) or {}
    base = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
    return {
        "base_model": s.get("model") or base,
        "finetune_run_id": s.get("run_id"),
        "selection_run_id": s.get("selection_run_id"),
        "selection": s.get("selection"),
        "train_dataset": s.get("dataset"),
        "n_train": s.get("n_train"),
        "n_full": s.get("n_full"),
        "train_time_s": s.get("train_time_s"),
    }


def answers_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("sample_id", pa.int64()),
            ("task", pa.string()),
            ("response", pa.string()),
            ("correct", pa.bool_()),
            ("rule", pa.string()),
            ("excluded", pa.string()),
        ]
    )


class AnswerStage:
    """Greedy answer to each sample's first question, judged against its reference answer."""

    name, unit = "answers", "samples"

    def __init__(self, config: EvalConfig) -> None:
        self.config = config
        self.res = EngineAndJudge(config)

    def plan(self, ctx: Any) -> list[Shard]:
        return row_shards(ctx.input().num_rows, self.config.shard_size, ctx.seed, self.name)

    def run_shard(self, ctx: Any, shard: Shard) -> Any:
        import pyarrow as pa

        from selection.clipper.zeroshot import image_problem
        from selection.engines.base import Turn
        from selection.judges import JudgeItem

        rows = ctx.input_rows(shard).to_pylist()
        problems = [image_problem(r["images"], r["flags"]) for r in rows]
        ok = [r for r, p in zip(rows, problems, strict=True) if p is None]
        engine = self.res.engine(ctx)
        responses: list[str] = []
        size = self.config.batch_size
        for s in range(0, len(ok), size):
            reqs = [
                (Turn("user", r["question"], tuple(r["images"] or ())),) for r in ok[s : s + size]
            ]
            responses += engine.generate(reqs, max_new_tokens=self.config.max_new_tokens)
            ctx.progress(len(responses))
        items = [
            JudgeItem(r["question"], (r["answer"],), resp, r["task"])
            for r, resp in zip(ok, responses, strict=True)
        ]
        verdicts = self.res.judge(ctx).judge(items) if items else []
        by_id = {r["sample_id"]: (a, v) for r, a, v in zip(ok, responses, verdicts, strict=True)}
        out: dict[str, list] = {k: [] for k in answers_schema().names}
        for r, problem in zip(rows, problems, strict=True):
            resp, v = by_id.get(r["sample_id"], (None, None))
            out["sample_id"].append(r["sample_id"])
            out["task"].append(r["task"])
            out["response"].append(resp)
            out["correct"].append(None if v is None else v.correct)
            out["rule"].append(None if v is None else v.rule)
            out["excluded"].append(problem)
        return pa.table(out, schema=answers_schema())


def build_stages(config: EvalConfig) -> list:
    return [AnswerStage(config)]


def evaluation_of(run_dir: Path) -> Any:
    """The `Evaluation` record of a finished eval run folder (read from its answer shards)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from store import runs
    from store.evaluations import Evaluation, accuracy_by_task

    meta = runs.read_run_json(run_dir)
    files = runs.stage_files(run_dir, AnswerStage.name)
    if not files:
        raise ThresherError(f"eval run {run_dir.name} has no answers yet; resume it first")
    table = pa.concat_tables([pq.read_table(p) for p in files])
    config = EvalConfig.from_dict(meta["params"])
    n, n_correct, n_undecided, per_task = accuracy_by_task(
        table["task"].to_pylist(), table["correct"].to_pylist()
    )
    prov = config.provenance
    return Evaluation(
        eval_id=meta["run_id"],
        dataset=meta["dataset"],
        dataset_id=meta.get("dataset_id"),
        model=config.model,
        adapter=config.adapter,
        engine=config.engine,
        judge=config.judge if config.judge != "llm" else f"llm:{config.judge_model}",
        n=n,
        n_correct=n_correct,
        n_undecided=n_undecided,
        accuracy=n_correct / n if n else 0.0,
        per_task=per_task,
        finetune_run_id=prov.get("finetune_run_id"),
        selection_run_id=prov.get("selection_run_id"),
        selection=prov.get("selection"),
        train_dataset=prov.get("train_dataset"),
        n_train=prov.get("n_train"),
        n_full=prov.get("n_full"),
        train_time_s=prov.get("train_time_s"),
        options={
            "limit": config.limit,
            "max_new_tokens": config.max_new_tokens,
            "engine_opts": config.engine_opts,
            "excluded": sum(e is not None for e in table["excluded"].to_pylist()),
        },
    )


def record_finished_evals(catalog: Any, only: list[str] | None = None) -> list[str]:
    """Insert the result of every finished eval run that `evaluations` does not hold yet."""
    from store import runs
    from store.evaluations import dataset_size, insert_evaluation

    done = []
    for info in runs.list_runs(catalog.workspace.runs_dir):
        if info.meta.get("method") != METHOD or info.state != "done":
            continue
        if only is not None and info.run_id not in only:
            continue
        done.append(info.path)
    if not done:
        return []
    with catalog.connect() as con:
        have = {r[0] for r in con.execute("SELECT eval_id FROM evaluations").fetchall()}
    todo = [evaluation_of(p) for p in done if p.name not in have or only is not None]
    if not todo:
        return []
    with catalog.transaction() as con:
        for ev in todo:
            if ev.n_full is None and ev.train_dataset:
                ev.n_full = dataset_size(con, ev.train_dataset)
            insert_evaluation(con, ev)
    return [ev.eval_id for ev in todo]
