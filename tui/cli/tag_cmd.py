"""CLI commands `tag` (tag, untag or annotate samples) and `tags` (counts, or the samples with a tag)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from store.errors import ThresherError
from store.workspace import Workspace
from tui.cli.export_cmd import _catalog
from tui.cli.output import ids_file_option


def _dataset_id(catalog, con, name: str | None) -> int | None:
    if name is None:
        return None
    from store.datasets import get_dataset

    return get_dataset(catalog, name, con).dataset_id


@click.command("tag")
@click.argument("tag", required=False)
@click.option(
    "--sample",
    "-s",
    "samples",
    multiple=True,
    metavar="ID",
    help="A sample: its id in the source file (with --dataset) or its sample_id; repeat.",
)
@ids_file_option
@click.option("--dataset", "-d", metavar="NAME", help="Dataset the source ids belong to.")
@click.option("--remove", is_flag=True, help="Take the tag off instead.")
@click.option(
    "--note", metavar="TEXT", help="Append a note to the samples (with or without a TAG)."
)
@click.option(
    "--run", "run_id", metavar="RUN", help="The run you were reviewing (kept in the log)."
)
@click.option("--author", help="Who (default: $THRESHER_AUTHOR, else your user name).")
@click.pass_obj
def tag_command(
    workspace: Workspace,
    tag: str | None,
    samples: tuple[str, ...],
    ids_file: Path | None,
    dataset: str | None,
    remove: bool,
    note: str | None,
    run_id: str | None,
    author: str | None,
) -> None:
    """Tag samples (or --remove a tag, or add a --note). Tags and notes are appended to a log,
    never deleted; the latest add/remove wins. They show in the workstation and every export's
    sidecar lists the exported samples' tags and notes.

    \b
    thresher tag blurry -d demo -s s12 -s s40
    thresher tag chart -d demo --ids-file exports/demo-search.ids
    thresher tag --note "answer is about the wrong panel" -d demo -s s12
    """
    from store import tags
    from store.ids import read_id_file

    if tag is None and note is None:
        raise click.UsageError("give a TAG, a --note, or both.")
    if remove and tag is None:
        raise click.UsageError("--remove needs the TAG to take off.")
    values = [*samples, *(read_id_file(ids_file) if ids_file else [])]
    if not values:
        raise click.UsageError("choose samples with --sample or --ids-file.")
    if tag is not None:
        tags.check_tag(tag)
    catalog = _catalog(workspace)
    with catalog.connect() as con:
        ids = tags.resolve_samples(con, values, _dataset_id(catalog, con, dataset))
    done = []
    if tag is not None:
        n = tags.tag(catalog, ids, tag, remove=remove, run_id=run_id, author=author)
        done.append(f"{'removed' if remove else 'tagged'} {tag!r} on {n:,} sample(s)")
    if note is not None:
        n = tags.add_note(catalog, ids, note, run_id=run_id, author=author)
        done.append(f"noted {n:,} sample(s)")
    click.echo("; ".join(done).capitalize() + ".")


@click.command("tags")
@click.argument("tag", required=False)
@click.option("--dataset", "-d", metavar="NAME", help="Only this dataset's samples.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def tags_command(workspace: Workspace, tag: str | None, dataset: str | None, as_json: bool) -> None:
    """Without TAG: every tag and how many samples carry it. With TAG: those samples' ids
    (source id a line, so `thresher decide RUN keep --ids-file` reads the output)."""
    from store import tags

    catalog = _catalog(workspace)
    with catalog.connect() as con:
        did = _dataset_id(catalog, con, dataset)
        if tag is None:
            counts = tags.tag_counts(con, did)
            if as_json:
                click.echo(json.dumps(counts))
            elif not counts:
                click.echo("No tags yet; add some with `thresher tag TAG -d DATASET -s ID`.")
            for name, n in [] if as_json else counts.items():
                click.echo(f"{n:>9,}  {name}")
            return
        found = tags.tagged_samples(con, tag, did).to_pylist()
    if as_json:
        click.echo(json.dumps([{"id": r["orig_id"], "sample_id": r["sample_id"]} for r in found]))
        return
    if not found:
        raise ThresherError(f"no sample carries tag {tag!r}{f' in {dataset}' if dataset else ''}.")
    click.echo("".join(r["id_line"] for r in found), nl=False)


def register(cli: click.Group) -> None:
    """Add this module's commands to the top-level group."""
    cli.add_command(tag_command)
    cli.add_command(tags_command)
