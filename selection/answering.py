"""The engine and judge a job process needs, built from its config on first use (CLIPPER, eval).

A config here is an `EngineSettings` (which `ClipperConfig` and `EvalConfig` extend) with a
batch_size, and optionally an adapter (a LoRA adapter for the transformers engine).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from selection.config import Config, param
from selection.engines import ENGINE_KINDS
from selection.judges import JUDGE_KINDS
from store.errors import ThresherError


@dataclass
class EngineSettings(Config):
    """The model, engine and judge fields every config that answers questions shares (CLIPPER, eval)."""

    model: str = param(
        "",
        "Target VLM: a local folder or a hub name (transformers/vllm), or the served model name "
        "(openai).",
        metavar="PATH_OR_NAME",
        required=True,
    )
    engine: str = param(
        "transformers",
        "transformers (CPU or GPU), openai (any OpenAI-compatible server), vllm (offline, GPU).",
        choices=ENGINE_KINDS,
    )
    base_url: str | None = param(
        None, "OpenAI-compatible endpoint for --engine openai, e.g. http://127.0.0.1:8000/v1."
    )
    api_key_env: str | None = param(
        None,
        "Environment variable holding the API key (the key itself is never written anywhere).",
        metavar="VAR",
    )
    engine_opts: dict[str, Any] = param(
        {},
        "Extra engine option, repeatable (device=cuda, dtype=bfloat16, concurrency=32, ...).",
        flag="--engine-opt",
        metavar="KEY=VALUE",
    )
    judge: str = param(
        "auto",
        "auto: rules extract and match the answer, undecided replies go to the LLM judge (with "
        "--judge-model) or count as wrong and are reported apart; rule: rules only; llm: the LLM "
        "judges every reply, as in the paper (docs/engines.md).",
        choices=JUDGE_KINDS,
    )
    judge_model: str | None = param(
        None, "Model name of the LLM judge (needed by --judge llm; optional for --judge auto)."
    )
    judge_base_url: str | None = param(None, "Endpoint of the LLM judge (default: --base-url).")

    def validate_engine(self, command: str) -> None:
        """The checks every answering command shares; errors start with `command` (clipper, eval)."""

        def bad(what: str) -> ThresherError:
            return ThresherError(f"{command}: {what}")

        if not self.model:
            raise bad("needs --model PATH_OR_NAME (the target VLM)")
        if self.engine == "openai" and not self.base_url:
            raise bad("--engine openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        if (
            self.judge in ("llm", "auto")
            and self.judge_model
            and not (self.judge_base_url or self.base_url)
        ):
            raise bad(f"--judge {self.judge} needs an endpoint: --judge-base-url (or --base-url)")
        if self.judge == "llm" and not self.judge_model:
            raise bad("--judge llm needs --judge-model (the judge's served model name)")


class EngineAndJudge:
    """Loads the engine and the judge lazily and keeps them for every stage of the process."""

    samples_per_prompt = 1
    """How many samples one request shows (CLIPPER's one-shot probes: 2); sizes vLLM's image limit."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self._engine: Any = None
        self._judge: Any = None

    def engine_options(self) -> dict[str, Any]:
        c = self.config
        opts: dict[str, Any] = dict(c.engine_opts)
        if c.engine == "transformers":
            opts.setdefault("batch_size", c.batch_size)
            if getattr(c, "adapter", None):
                opts["adapter"] = c.adapter
        if c.engine == "openai":
            opts.setdefault("base_url", c.base_url)
            if c.api_key_env:
                opts.setdefault("api_key_env", c.api_key_env)
        return opts

    def engine(self, ctx: Any) -> Any:
        if self._engine is None:
            from selection.engines import load_engine

            c = self.config
            adapter = getattr(c, "adapter", None)
            ctx.log.info("loading %s engine for %s (adapter %s)", c.engine, c.model, adapter)
            opts = self.engine_options()
            if c.engine == "vllm" and "limit_images" not in opts:
                opts["limit_images"] = self.samples_per_prompt * max_images(ctx.input())
            self._engine = load_engine(c.engine, c.model, **opts)
        return self._engine

    def judge(self, ctx: Any) -> Any:
        if self._judge is None:
            from selection.judges import load_judge

            c = self.config
            llm: dict[str, Any] | None = None
            if c.judge_model and c.judge in ("llm", "auto"):
                llm = {
                    "model": c.judge_model,
                    "base_url": c.judge_base_url or c.base_url,
                    "cache_path": str(ctx.run_dir / "judge_cache.jsonl"),
                }
                if c.api_key_env:
                    llm["api_key_env"] = c.api_key_env
            if c.judge == "llm":
                self._judge = load_judge("llm", **(llm or {}))
            elif c.judge == "auto":
                self._judge = load_judge("auto", llm=llm)
            else:
                self._judge = load_judge("rule")
        return self._judge


def max_images(table: Any) -> int:
    """The most images one sample of `table` (an input.parquet with an `images` list column) has;
    at least 1, so a text-only dataset still loads a multimodal model."""
    import pyarrow.compute as pc

    if "images" not in table.column_names or table.num_rows == 0:
        return 1
    most = pc.max(pc.list_value_length(table["images"])).as_py()
    return max(1, int(most or 0))
