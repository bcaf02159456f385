"""CLI commands: app_cmd (filled in by its issue)."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Add this module's commands to the top-level group."""
    cli.add_command(tui_command)


@click.command("tui")
@click.pass_obj
def tui_command(workspace) -> None:
    """Open the curation workstation."""
    raise click.ClickException("the workstation is not built yet")
