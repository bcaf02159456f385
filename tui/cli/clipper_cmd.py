"""`thresher run clipper`: start (or resume) a CLIPPER selection run as a job."""

from __future__ import annotations

import click

from selection.clipper.config import ClipperConfig
from tui.cli.config_opts import config_options
from tui.cli.jobs import job_options, start_run


@click.command("clipper")
@click.option("--dataset", required=True, metavar="NAME", help="Dataset in the catalog.")
@config_options(ClipperConfig)
@job_options
@click.pass_obj
def clipper_command(workspace, dataset: str, params: dict, detach: bool, seed: int, name: str | None) -> None:  # fmt: skip
    """CLIPPER: zero-shot split into P/W, one-shot ICL probing, four subsets, coresets, perplexity.

    Stages: zeroshot -> probe -> perplexity -> result. The run's selections are P1+W, P1+Wc,
    P1+Wu, P2+W, P2+Wc, P2+Wu and mid-ppl; browse them in the TUI or `thresher export`.
    """
    config = ClipperConfig.from_dict(params)
    start_run(workspace, "clipper", dataset, config, detach, seed=seed, name=name)


def register(cli: click.Group) -> None:
    """Add `clipper` to the `run` group."""
    from tui.cli.run_cmd import run_group

    run_group.add_command(clipper_command)
