"""CLI commands `export` (write a training manifest) and `decide` (append keep/drop/clear decisions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from store.errors import ThresherError
from store.workspace import Workspace
from tui.cli.output import ids_file_option

FORMAT_CHOICES = ["llava", "swift", "sharegpt", "ids", "parquet"]


def _catalog(workspace: Workspace) -> Any:
    from store.catalog import Catalog

    if not workspace.exists():
        raise ThresherError(
            f"no workspace at {workspace.root}; create one with `thresher demo` or `thresher init`, "
            "or point --workspace / THRESHER_WORKSPACE at an existing one."
        )
    return Catalog.open(workspace)


def _run_dataset(catalog: Any, run_id: str) -> str:
    from store import runs
    from store.decisions import run_dir_for

    with catalog.connect() as con:
        run = runs.read_run_json(run_dir_for(catalog, con, run_id))
    if not run.get("dataset"):
        raise ThresherError(f"run {run_id} names no dataset; pass --dataset NAME.")
    return run["dataset"]


@click.command("export")
@click.option("--dataset", "-d", metavar="NAME", help="Dataset to export (default: the run's).")
@click.option(
    "--run",
    "run_id",
    metavar="RUN",
    help="Export this run's effective selection (its algorithmic choice overridden by the latest "
    "decisions). Without --run the whole dataset is exported.",
)
@click.option(
    "--selection",
    metavar="NAME",
    help="Which selection of the run (e.g. CLIPPER's P1+W, P1+Wc); default: the run's default.",
)
@click.option(
    "--format",
    "-f",
    "fmt",
    required=True,
    type=click.Choice(FORMAT_CHOICES),
    help="llava: LLaVA JSON (id, image, conversations). swift: ms-swift JSONL (messages, "
    "images). sharegpt: LLaMA-Factory ShareGPT JSON plus dataset_info.json beside it. "
    "ids: one original sample id a line (JSON-quoted where plain text would lose it; "
    "decide --ids-file reads it). parquet: Hub-style Parquet with the images embedded "
    "(images list<struct<bytes, path>>, messages in TRL's typed form) for TRL and datasets.",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    help="Output file or folder (default: <workspace>/exports/<dataset>[-<run>-<selection>]-<format>.<ext>).",
)
@click.option(
    "--paths",
    "path_style",
    type=click.Choice(["absolute", "relative"]),
    default="absolute",
    show_default=True,
    help="Image paths as absolute paths, or relative to --image-root (the trainer's image "
    "folder: LLaVA --image_folder, LLaMA-Factory media_dir).",
)
@click.option(
    "--image-root",
    type=click.Path(path_type=Path, file_okay=False),
    help="With --paths relative: the folder paths are relative to (default: the dataset's own "
    "image root, so paths read as in the source).",
)
@click.option(
    "--include-flagged",
    is_flag=True,
    help="Also export samples whose image is missing, corrupt or outside the image root "
    "(skipped by default). Samples whose <image> tokens cannot match their images are always "
    "skipped.",
)
@click.option(
    "--drop-extra",
    is_flag=True,
    help="Leave out the source's keys Thresher does not model (kept by default: sample keys "
    "such as ms-swift objects, and turn keys such as loss).",
)
@click.pass_obj
def export_command(
    workspace: Workspace,
    dataset: str | None,
    run_id: str | None,
    selection: str | None,
    fmt: str,
    out: Path | None,
    path_style: str,
    image_root: Path | None,
    include_flagged: bool,
    drop_extra: bool,
) -> None:
    """Write a training manifest of a dataset or of a run's effective selection.

    The file is written atomically (temp file + rename) with a sidecar <file>.meta.json that
    records the run, method parameters, counts, decisions applied and the manifest's sha256.
    Every exported sample has exactly as many images as <image> tokens: a sample whose source had
    no tokens gets them in front of its first user turn; one that cannot be fixed is skipped and
    counted. See docs/export.md.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from store.export import export

    catalog = _catalog(workspace)
    if dataset is None:
        if run_id is None:
            raise click.UsageError("name what to export: --dataset NAME and/or --run RUN.")
        dataset = _run_dataset(catalog, run_id)
    console = Console(soft_wrap=True)  # long paths stay copyable
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # no stray blank line in logs and pipes
    ) as bars:
        task = bars.add_task(f"exporting {fmt}", total=None)
        res = export(
            catalog,
            dataset=dataset,
            run_id=run_id,
            selection=selection,
            fmt=fmt,
            out_path=out,
            path_style=path_style,
            image_root=image_root,
            include_flagged=include_flagged,
            keep_extra=not drop_extra,
            progress=lambda done, total: bars.update(task, completed=done, total=total),
        )
    print_summary(console, res.meta, res.sidecar_path, res.extra_paths)


def print_summary(console: Any, meta: dict[str, Any], sidecar: Path, extra: list[Path]) -> None:
    """The sidecar, in a few lines."""
    c = meta["counts"]
    console.print(f"[green]Wrote[/] {meta['path']}", highlight=False)
    source = f"dataset {meta['dataset']['name']}"
    if meta["run"]:
        r = meta["run"]
        source = f"run {r['run_id']} ({r['method']}, selection {meta['selection']}) of " + source
    console.print(f"  {source}", highlight=False)
    console.print(
        f"  {c['exported']:,} samples exported of {c['selected']:,} selected"
        + (
            f"; {c['fixed_image_tokens']:,} given missing <image> tokens"
            if c["fixed_image_tokens"]
            else ""
        )
    )
    if c["skipped"]:
        why = ", ".join(f"{k} {v:,}" for k, v in c["skipped"].items())
        console.print(f"  [yellow]skipped {c['skipped_total']:,}[/]: {why}")
    d = meta.get("decisions")
    if d:
        console.print(
            f"  decisions applied: {d['applied']:,} ({d['changed']:,} changed the algorithm's choice; "
            f"log up to seq {d['last_seq']})"
        )
    if meta["run"] and not meta["run"]["fingerprint_matches"]:
        console.print(
            "  [yellow]the dataset changed since this run was made (fingerprint differs)[/]"
        )
    if meta.get("image_root"):
        console.print(f"  image paths relative to {meta['image_root']}", highlight=False)
    console.print(f"  sha256 {meta['sha256']}")
    console.print(f"  sidecar {sidecar}", highlight=False)
    for path in extra:
        console.print(f"  updated {path}", highlight=False)


def _parse_group(value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    column, sep, group = value.partition("=")
    if not sep or not column or not group:
        raise click.BadParameter(
            f"{value!r} is not COLUMN=VALUE (e.g. cluster=7)", param_hint="--group"
        )
    return column.strip(), group.strip()


def _split_ids(catalog: Any, run_id: str, values: tuple[str, ...]) -> list[str]:
    """`--ids` values exactly as typed; a value that is no id but has commas is a list of ids."""
    from store import decisions
    from store.errors import NotFound

    out: list[str] = []
    for value in values:
        if "," in value:
            try:
                decisions.resolve_orig_ids(catalog, run_id, [value])
            except NotFound:
                out.extend(part for part in value.split(",") if part)
                continue
        if value:
            out.append(value)
    return out


@click.command("decide")
@click.argument("run_id", metavar="RUN")
@click.argument("action", type=click.Choice(["keep", "drop", "clear"]))
@click.option(
    "--ids",
    "ids",
    multiple=True,
    metavar="ID",
    help="Original sample id, matched exactly (blanks count); repeat, or separate with commas.",
)
@ids_file_option
@click.option(
    "--group",
    metavar="COLUMN=VALUE",
    help="A whole group of the run, e.g. cluster=7 (OFA) or subset_t1=P (CLIPPER).",
)
@click.option("--note", help="Why: kept in the decision log and shown in the workstation.")
@click.option("--author", help="Who decided (default: $THRESHER_AUTHOR, else your user name).")
@click.pass_obj
def decide_command(
    workspace: Workspace,
    run_id: str,
    action: str,
    ids: tuple[str, ...],
    ids_file: Path | None,
    group: str | None,
    note: str | None,
    author: str | None,
) -> None:
    """Override a run's selection: keep, drop, or clear (back to the algorithm's choice).

    Decisions are appended to the log, never deleted; the latest decision for a sample wins, and
    `clear` is how to undo. Choose the samples with exactly one of --ids, --ids-file, --group.
    """
    from rich.console import Console

    from store import decisions

    chosen = [x for x in (bool(ids), ids_file is not None, group is not None) if x]
    if len(chosen) != 1:
        raise click.UsageError("choose the samples with exactly one of --ids, --ids-file, --group.")
    catalog = _catalog(workspace)
    parsed_group = _parse_group(group)
    if parsed_group:
        column, value = parsed_group
        n = decisions.record_group(catalog, run_id, column, value, action, author=author, note=note)
        what = f"group {column}={value}"
    else:
        from store.ids import read_id_file

        wanted = (
            read_id_file(ids_file) if ids_file is not None else _split_ids(catalog, run_id, ids)
        )
        if not wanted:
            raise ThresherError(f"no ids given{f' in {ids_file}' if ids_file else ''}.")
        sample_ids = decisions.resolve_orig_ids(catalog, run_id, wanted)
        n = decisions.record(catalog, run_id, sample_ids, action, author=author, note=note)
        what = f"{n:,} sample{'s' if n != 1 else ''}"
    with catalog.connect() as con:
        run_dir = decisions.run_dir_for(catalog, con, run_id)
        eff = decisions.effective(con, run_dir)
    import pyarrow.compute as pc

    kept = pc.sum(eff["effective"]).as_py() or 0
    algo = pc.sum(eff["algorithmic"]).as_py() or 0
    Console(soft_wrap=True).print(
        f"Recorded [bold]{action}[/] for {what} of run {run_id} ({n:,} decisions). "
        f"Default selection: {kept:,} kept of {eff.num_rows:,} (algorithm alone: {algo:,}).",
        highlight=False,
    )


def register(cli: click.Group) -> None:
    """Add this module's commands to the top-level group."""
    cli.add_command(export_command)
    cli.add_command(decide_command)
