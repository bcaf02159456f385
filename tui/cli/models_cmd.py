"""`thresher models`: the models already on this machine (Hugging Face cache, open_clip checkpoints),
i.e. what `--model` / `--encoder` can name with `--offline`."""

from __future__ import annotations

import click

from tui.cli.output import json_option, print_json


@click.command("models")
@json_option
def models_command(as_json: bool) -> None:
    """List cached models: transformers repos (for --model), open_clip hub repos (for --encoder
    hf-hub:ORG/NAME) and open_clip checkpoint files (for --pretrained PATH)."""
    from selection.models.resolve import cached_models, offline

    found = cached_models()
    if as_json:
        print_json(found)
        return
    if not found:
        click.echo(
            "No cached models. Hub names download on first use"
            + (" (not now: offline)." if offline() else ".")
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Cached models", title_justify="left")
    for col in ("kind", "name", "size", "path"):
        table.add_column(col, overflow="fold", justify="right" if col == "size" else "left")
    for m in found:
        table.add_row(m.kind, m.name, f"{m.size_bytes / 1e9:.2f} GB", m.path)
    Console().print(table)


def register(cli: click.Group) -> None:
    cli.add_command(models_command)
