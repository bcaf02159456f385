"""The `thresher` command line: one click group; each command family lives in its own module."""

from __future__ import annotations

import os
import sys

import click

from store.workspace import Workspace
from tui.cli import (
    app_cmd,
    clipper_cmd,
    data,
    demo_cmd,
    errors,
    export_cmd,
    jobs,
    models_cmd,
    ofa_cmd,
    run_cmd,
    search_cmd,
    tag_cmd,
    training,
)


@click.group(
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--workspace",
    "-w",
    envvar="THRESHER_WORKSPACE",
    default=None,
    metavar="DIR",
    help="Workspace folder (catalog.duckdb, runs/, exports/). "
    "Default: $THRESHER_WORKSPACE, else ./thresher-workspace.",
)
@click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=lambda _ctx, _param, value: errors.debug.update(on=bool(value)),
    help="On an error, also print the Python traceback (or set THRESHER_DEBUG=1).",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Use only models already on disk (sets HF_HUB_OFFLINE=1 for this command and its jobs); "
    "a hub name that is not cached fails at once.",
)
@click.version_option(package_name="thresher")
@click.pass_context
def cli(ctx: click.Context, workspace: str | None, offline: bool) -> None:
    """Thresher: curate multimodal instruction-tuning data with CLIPPER and OFA, review it,
    export a manifest, and launch a LoRA fine-tune.

    Run with no command inside a workspace to open the workstation (same as `thresher tui`).
    """
    ctx.obj = Workspace.resolve(workspace)
    if os.environ.get("NO_COLOR"):  # https://no-color.org: any non-empty value
        ctx.color = False  # click.secho/style print plain text; Rich and Textual read it too
    if offline:
        from selection.models.resolve import set_offline

        set_offline()
    if ctx.invoked_subcommand is None:
        if ctx.obj.exists():
            ctx.invoke(app_cmd.tui_command)
        else:
            click.echo(ctx.get_help())
            click.echo(
                f"\nNo workspace at {ctx.obj.root}; start with `thresher demo` or `thresher init`."
            )


for module in (
    data,
    demo_cmd,
    export_cmd,
    jobs,
    models_cmd,
    run_cmd,
    ofa_cmd,
    clipper_cmd,
    search_cmd,
    tag_cmd,
    training,
    app_cmd,
):
    module.register(cli)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every error prints one line (what happened, what to do), never a traceback."""
    errors.show_notices()
    try:
        cli.main(args=argv, prog_name="thresher", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:  # one line, exit 1 (2: input to correct); --debug adds the traceback
        sys.exit(errors.handle(exc))
