"""`thresher run clipper`: start (or resume) a CLIPPER selection run as a job."""

from __future__ import annotations

import click

from selection.clipper.config import DEFAULT_PROMPT
from tui.cli.engine_opts import engine_options, seeded_subset
from tui.cli.jobs import job_options, start_run


@click.command("clipper")
@click.option("--dataset", required=True, metavar="NAME", help="Dataset in the catalog.")
@engine_options(
    model_help="Target VLM: a local folder or a hub name (for --engine openai: the served model name).",
    limit_help="Use a seeded subset of N samples (demos).",
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
@click.option(
    "--no-perplexity", is_flag=True, help="Skip the perplexity stage and mid-ppl baseline."
)
@click.option(
    "--mid-ppl-fraction",
    type=float,
    default=0.5,
    show_default=True,
    help="Fraction of the samples the middle-perplexity baseline keeps (as Random in the paper).",
)
@click.option(
    "--max-empty-fraction",
    type=float,
    default=0.5,
    show_default=True,
    help="Fail the zeroshot / probe stage when more than this fraction of replies is empty.",
)
@click.option(
    "--zero-shot-prompt",
    default=DEFAULT_PROMPT,
    metavar="TEMPLATE",
    help="Template of the zero-shot user turn ({question}); default asks for a short answer.",
)
@click.option(
    "--one-shot-prompt",
    default=DEFAULT_PROMPT,
    metavar="TEMPLATE",
    help="Template of both user turns of a one-shot probe ({question}).",
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
    mid_ppl_fraction: float,
    max_empty_fraction: float,
    zero_shot_prompt: str,
    one_shot_prompt: str,
    engine_opt: dict[str, object],
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
        engine_opts=engine_opt,
        judge=judge,
        judge_model=judge_model,
        judge_base_url=judge_base_url,
        m=m,
        tau=tau,
        assignment=assignment,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        perplexity=not no_perplexity,
        mid_ppl_fraction=mid_ppl_fraction,
        max_empty_fraction=max_empty_fraction,
        zero_shot_prompt=zero_shot_prompt,
        one_shot_prompt=one_shot_prompt,
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
