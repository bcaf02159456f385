"""`thresher run clipper`: start (or resume) a CLIPPER selection run as a job."""

from __future__ import annotations

import click

from store.errors import ThresherError
from tui.cli.jobs import job_options, start_run


def _engine_opts(pairs: tuple[str, ...]) -> dict[str, object]:
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


@click.command("clipper")
@click.option("--dataset", required=True, metavar="NAME", help="Dataset in the catalog.")
@click.option(
    "--engine",
    type=click.Choice(["transformers", "openai", "vllm"]),
    default="transformers",
    show_default=True,
    help="transformers (CPU or GPU), openai (any OpenAI-compatible server), vllm (offline, GPU).",
)
@click.option(
    "--model",
    required=True,
    metavar="PATH_OR_NAME",
    help="Target VLM: a local folder or a hub name (for --engine openai: the served model name).",
)
@click.option(
    "--base-url", default=None, help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1."
)
@click.option(
    "--api-key-env",
    default=None,
    metavar="VAR",
    help="Environment variable holding the API key (the key is never written anywhere).",
)
@click.option("--judge", type=click.Choice(["rule", "llm"]), default="rule", show_default=True)
@click.option("--judge-model", default=None, help="Model of the LLM judge (--judge llm).")
@click.option(
    "--judge-base-url", default=None, help="Endpoint of the LLM judge (default --base-url)."
)
@click.option(
    "--m", "m", type=int, default=10, show_default=True, help="W queries per demonstration."
)
@click.option(
    "--tau",
    type=click.IntRange(1, 2),
    default=1,
    show_default=True,
    help="Default selection P{tau}+W (both tau=1 and tau=2 are always computed).",
)
@click.option(
    "--assignment",
    type=click.Choice(["random", "balanced"]),
    default="random",
    show_default=True,
    help="random (the paper) or balanced (every W sample probed about equally often).",
)
@click.option("--max-new-tokens", type=int, default=32, show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--limit", type=int, default=None, help="Use a seeded subset of N samples (demos).")
@click.option(
    "--no-perplexity", is_flag=True, help="Skip the perplexity stage and mid-ppl baseline."
)
@click.option(
    "--engine-opt",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra engine option, repeatable (device=cuda, dtype=bfloat16, concurrency=32, ...).",
)
@job_options
@click.pass_obj
def clipper_command(
    workspace,
    dataset: str,
    engine: str,
    model: str,
    base_url: str | None,
    api_key_env: str | None,
    judge: str,
    judge_model: str | None,
    judge_base_url: str | None,
    m: int,
    tau: int,
    assignment: str,
    max_new_tokens: int,
    batch_size: int,
    limit: int | None,
    no_perplexity: bool,
    engine_opt: tuple[str, ...],
    detach: bool,
    seed: int,
    name: str | None,
) -> None:
    """CLIPPER: zero-shot split into P/W, one-shot ICL probing, four subsets, coresets, perplexity.

    Stages: zeroshot -> probe -> perplexity -> result. The run's selections are P1+W, P1+Wc,
    P1+Wu, P2+W, P2+Wc, P2+Wu and mid-ppl; browse them in the TUI or `thresher export`.
    """
    from selection.clipper import METHOD, register
    from selection.clipper.config import ClipperConfig

    config = ClipperConfig(
        model=model,
        engine=engine,
        base_url=base_url,
        api_key_env=api_key_env,
        engine_opts=_engine_opts(engine_opt),
        judge=judge,
        judge_model=judge_model,
        judge_base_url=judge_base_url,
        m=m,
        tau=tau,
        assignment=assignment,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        perplexity=not no_perplexity,
        limit=limit,
    )
    sample_ids = seeded_subset(workspace, dataset, limit, seed) if limit else None
    register()
    start_run(
        workspace, METHOD, dataset, config, detach, seed=seed, name=name, sample_ids=sample_ids
    )


def register(cli: click.Group) -> None:
    """Add `clipper` to the `run` group."""
    from tui.cli.run_cmd import run_group

    run_group.add_command(clipper_command)
