"""`thresher tui`: open the curation workstation on the workspace."""

from __future__ import annotations

import click

MODES = ("auto", "kitty", "sixel", "halfcell", "none")


def register(cli: click.Group) -> None:
    """Add this module's commands to the top-level group."""
    cli.add_command(tui_command)


@click.command("tui")
@click.option(
    "--image-mode",
    type=click.Choice(MODES),
    default="auto",
    envvar="THRESHER_IMAGE_MODE",
    show_default=True,
    help="How sample images are drawn: auto (Kitty/Sixel when the terminal has them, "
    "half-cell blocks otherwise and inside tmux), or force one; none draws no image.",
)
@click.option(
    "--run", "run_id", default=None, metavar="RUN", help="Open this run's browser at start."
)
@click.pass_obj
def tui_command(workspace, image_mode: str = "auto", run_id: str | None = None) -> None:
    """Open the curation workstation (datasets, runs, browser, overrides, export)."""
    from tui.app import ThresherApp
    from tui.widgets.images import prepare

    mode = prepare(image_mode)
    ThresherApp(workspace, image_mode=mode, open_run=run_id).run()
