"""`thresher run <method>`: the group each selection method adds its command to."""

from __future__ import annotations

import click


@click.group("run")
def run_group() -> None:
    """Start a selection run (OFA, CLIPPER, a baseline) as a job.

    Every run is a folder under <workspace>/runs; rerun the same command (or `thresher resume
    RUN`) to resume an interrupted run. Add --detach to keep it running after you log out.
    """


def register(cli: click.Group) -> None:
    cli.add_command(run_group)
