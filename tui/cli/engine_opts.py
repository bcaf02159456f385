"""The model, engine and judge options every answering command shares (`run clipper`, `eval`).

One decorator declares them, so the two commands cannot drift apart; the checks live in
`EngineSettings.validate_engine`, where the configs (and the TUI's start form) use them too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from selection.engines.resources import ENGINES, JUDGES  # light: no engine library is imported
from store.errors import ThresherError


def engine_options(model_help: str, limit_help: str) -> Callable[[Callable[..., Any]], Any]:
    """--model --engine --base-url --api-key-env --judge --judge-model --judge-base-url
    --max-new-tokens --batch-size --limit --engine-opt, in that order in --help."""
    options = [
        click.option("--model", required=True, metavar="PATH_OR_NAME", help=model_help),
        click.option(
            "--engine",
            type=click.Choice(ENGINES),
            default="transformers",
            show_default=True,
            help="transformers (CPU or GPU), openai (any OpenAI-compatible server), "
            "vllm (offline, GPU).",
        ),
        click.option(
            "--base-url",
            default=None,
            help="OpenAI-compatible endpoint for --engine openai, e.g. http://127.0.0.1:8000/v1.",
        ),
        click.option(
            "--api-key-env",
            default=None,
            metavar="VAR",
            help="Environment variable holding the API key (the key is never written anywhere).",
        ),
        click.option(
            "--judge",
            type=click.Choice(JUDGES),
            default="auto",
            show_default=True,
            help="auto: rules extract and match answers, undecided replies go to the LLM judge "
            "(with --judge-model) or count as wrong; rule: rules only; llm: the LLM judges all.",
        ),
        click.option(
            "--judge-model",
            default=None,
            help="Model of the LLM judge (needed by --judge llm; optional for auto).",
        ),
        click.option(
            "--judge-base-url", default=None, help="Endpoint of the LLM judge (default --base-url)."
        ),
        click.option("--max-new-tokens", type=int, default=32, show_default=True),
        click.option("--batch-size", type=int, default=8, show_default=True),
        click.option("--limit", type=int, default=None, help=limit_help),
        click.option(
            "--engine-opt",
            "engine_opt",
            multiple=True,
            metavar="KEY=VALUE",
            callback=lambda ctx, param, value: parse_engine_opts(value),
            help="Extra engine option, repeatable (device=cuda, dtype=bfloat16, concurrency=32, ...).",
        ),
    ]

    def decorate(fn: Callable[..., Any]) -> Any:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def parse_engine_opts(pairs: tuple[str, ...]) -> dict[str, object]:
    """KEY=VALUE pairs for the engine's constructor; numbers and true/false are typed."""
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ThresherError(f"--engine-opt {pair!r}: write it as KEY=VALUE (e.g. device=cuda)")
        value: object = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            for cast in (int, float):
                try:
                    value = cast(raw)
                    break
                except ValueError:
                    pass
        out[key] = value
    return out


def seeded_subset(workspace, dataset: str, limit: int, seed: int) -> list[int] | None:
    """`limit` sample ids of the dataset drawn with `seed` (None when the dataset is not larger)."""
    import random

    from store.catalog import Catalog
    from store.errors import NotFound

    with Catalog.open(workspace).connect() as con:
        ids = [
            r[0]
            for r in con.execute(
                "SELECT sample_id FROM samples JOIN datasets USING (dataset_id) "
                "WHERE datasets.name = ? ORDER BY sample_id",
                [dataset],
            ).fetchall()
        ]
    if not ids:
        raise NotFound(f"dataset {dataset!r} has no samples (or does not exist); see `thresher ls`")
    if limit >= len(ids):
        return None
    return sorted(random.Random(seed).sample(ids, limit))
