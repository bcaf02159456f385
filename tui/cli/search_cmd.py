"""CLI command `search`: the samples of a run nearest a text (encoded with the run's CLIP) or a sample."""

from __future__ import annotations

import json

import click

from store.workspace import Workspace


def id_line(orig_id: str) -> str:
    """An id as store.ids writes it: plain, or JSON when plain text would lose it (blanks at an
    end, a leading quote, control or invisible characters)."""
    plain = orig_id == orig_id.strip() and orig_id.isprintable() and not orig_id.startswith('"')
    return orig_id if plain else json.dumps(orig_id)


@click.command("search")
@click.argument("text", required=False)
@click.option(
    "--run", "run_id", required=True, metavar="RUN", help="Run whose embeddings to search."
)
@click.option(
    "--like",
    metavar="SAMPLE_ID",
    help="More like this sample (a sample_id or the id in the source file) instead of a text.",
)
@click.option("--top", "-n", default=20, show_default=True, help="How many results.")
@click.option(
    "--on",
    type=click.Choice(["both", "image", "text"]),
    default="both",
    show_default=True,
    help="Match the text against the images, the instructions, or both (the mean of the two cosines).",
)
@click.option(
    "--backend",
    type=click.Choice(["auto", "faiss", "torch", "numpy"]),
    default="auto",
    show_default=True,
    help="auto: faiss when installed (pip install -e '.[faiss]'), else float16 products in "
    "torch with the candidates re-scored in float32, else a blocked NumPy scan; same results.",
)
@click.option(
    "--approx",
    is_flag=True,
    help="Scan only the lists nearest the query (inverted file over the same rows): much faster "
    "at a million rows, may miss a few true neighbours. The lists are trained once per run "
    "and cached in <run>/search/.",
)
@click.option("--nlist", type=int, default=0, help="--approx: lists (0 = about sqrt(rows)/4).")
@click.option("--nprobe", type=int, default=16, show_default=True, help="--approx: lists scanned.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option(
    "--ids",
    "as_ids",
    is_flag=True,
    help="Print only the hits' source ids, one a line (`thresher decide RUN drop --ids-file` "
    "and `thresher tag --ids-file` read it).",
)
@click.option(
    "--tag", "tag_name", metavar="TAG", help="Also tag every hit with TAG (the tag log, see `tag`)."
)
@click.pass_obj
def search_command(
    workspace: Workspace,
    text: str | None,
    run_id: str,
    like: str | None,
    top: int,
    on: str,
    backend: str,
    approx: bool,
    nlist: int,
    nprobe: int,
    as_json: bool,
    as_ids: bool,
    tag_name: str | None,
) -> None:
    """Find a run's samples by meaning: TEXT is encoded with the run's own CLIP encoder and
    compared with the embeddings the run saved (exact inner product, best first).

    \b
    thresher search --run ofa-demo-1a2b3c4d "a bar chart" --top 10
    thresher search --run ofa-demo-1a2b3c4d --like 4294967303 --json
    """
    import warnings

    from selection.search import RunSearcher
    from store import runs

    if tag_name:
        from store.tags import check_tag

        check_tag(tag_name)  # before the search, not after it
    run_dir = runs.resolve_run_dir(workspace.runs_dir, run_id)
    searcher = RunSearcher(run_dir, backend=backend, nlist=nlist if approx else None, nprobe=nprobe)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random-weight test encoders warn; the run already said so
        result = searcher.search(text, like=like, top=top, on=on)
    if tag_name:
        from store import tags
        from store.catalog import Catalog

        n = tags.tag(
            Catalog.open(workspace),
            [h.sample_id for h in result.hits],
            tag_name,
            run_id=run_dir.name,
        )
        click.echo(f"tagged {n} hit(s) {tag_name!r}", err=True)
    if as_json:
        click.echo(json.dumps(result.to_json()))
        return
    if as_ids:
        for h in result.hits:
            click.echo(id_line(h.orig_id))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=f"{escape(result.query)} in {result.run_id} ({result.rows_searched:,} rows, "
        f"{result.backend}, {result.seconds * 1000:.1f} ms)",
        title_justify="left",
    )
    for name, justify in (("#", "right"), ("score", "right"), ("sample_id", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_column("id")
    table.add_column("question", overflow="ellipsis", no_wrap=True, max_width=60)
    for h in result.hits:
        table.add_row(
            str(h.rank), f"{h.score:.4f}", str(h.sample_id), escape(h.orig_id), escape(h.question)
        )
    Console().print(table)


def register(cli: click.Group) -> None:
    """Add this module's commands to the top-level group."""
    cli.add_command(search_command)
