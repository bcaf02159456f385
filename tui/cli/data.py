"""CLI commands for the workspace and its data: `init`, `ingest`, `datasets`, `status`, `doctor`."""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from pathlib import Path
from typing import Any

import click

from store.errors import ThresherError
from store.workspace import Workspace
from tui.cli.output import json_option, plain, print_json


def register(cli: click.Group) -> None:
    """Add this module's commands to the top-level group."""
    for command in (init_command, ingest_command, datasets_command, status_command, doctor):
        cli.add_command(command)


def _console():
    from rich.console import Console

    return Console()


def _open(workspace: Workspace, create: bool = False):
    from store.catalog import Catalog

    if not create and not workspace.exists():
        raise ThresherError(
            f"no workspace at {workspace.root}; create one with `thresher init` (or `thresher "
            "demo`), or point --workspace / THRESHER_WORKSPACE at an existing one."
        )
    return Catalog.open(workspace)


@click.command("init")
@click.pass_obj
def init_command(workspace: Workspace) -> None:
    """Create a workspace (catalog.duckdb, runs/, exports/) in --workspace.

    Safe to run again: an existing workspace is left as it is and its schema brought up to date.
    """
    existed = workspace.exists()
    catalog = _open(workspace, create=True)
    state = "already there, schema up to date" if existed else "created"
    click.echo(f"Workspace {workspace.root}: {state} (catalog {catalog.path.name}).")


def _parse_maps(values: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for item in values:
        key, sep, column = item.partition("=")
        if not sep or not key or not column:
            raise click.BadParameter(f"{item!r} is not KEY=COLUMN", param_hint="--map")
        mapping[key.strip()] = column.strip()
    return mapping


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--name",
    "-n",
    default=None,
    help="Dataset name. Default: the file's stem "
    "(ShareGPT: the dataset_info.json key). Ingesting again under the same name "
    "updates the dataset and keeps every known sample's id.",
)
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    type=click.Choice(
        ["auto", "llava", "swift", "sharegpt", "table", "cauldron", "trl", "openai", "qwen"]
    ),
    help="llava: id/image/conversations (from/value), JSON or Parquet (LLaVA-OneVision). "
    "swift: ms-swift messages (role/content) and images. sharegpt: LLaMA-Factory, PATH is "
    "dataset_info.json or a data file beside it. table: Parquet/JSONL with --map. "
    "cauldron: images + texts (user/assistant). trl/openai/qwen: messages whose content is "
    "a list of typed parts (image placeholders, image_url, image). "
    "auto: guess from the Parquet schema or the first sample.",
)
@click.option(
    "--image-root",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder that relative image paths resolve against. Default: the data "
    "file's folder (ShareGPT: the dataset_info.json folder). Relative paths that "
    "climb out of it are flagged path_escape and never read.",
)
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="KEY=COLUMN",
    help="Column mapping, repeatable: id, image, question, answer, conversation, "
    "task, system. Required for --format table (e.g. --map question=prompt "
    "--map answer=response --map image=img_path); overrides field names otherwise.",
)
@click.option(
    "--dataset-key",
    default=None,
    metavar="KEY",
    help="Which entry of a LLaMA-Factory dataset_info.json to read (needed when it "
    "describes more than one dataset).",
)
@click.option(
    "--check-images",
    default="header",
    show_default=True,
    type=click.Choice(["none", "exists", "header", "decode"]),
    help="How hard to look at each image: none; exists (stat: missing, zero-byte); "
    "header (+ open with Pillow and read the size: truncated or non-image files); "
    "decode (+ decode every pixel: slowest, catches damaged image data).",
)
@click.option(
    "--fetch-remote",
    is_flag=True,
    help="Download images given as http(s) URLs into the workspace's image store. Without "
    "it they are flagged remote_image and never requested.",
)
@click.pass_obj
def ingest_command(
    workspace: Workspace,
    paths: tuple[Path, ...],
    name: str | None,
    fmt: str,
    image_root: Path | None,
    maps: tuple[str, ...],
    dataset_key: str | None,
    check_images: str,
    fetch_remote: bool,
) -> None:
    """Read a dataset into the workspace catalog: a file, a folder of shards, or a glob.

    Several PATHs (a glob your shell expanded) or a folder are one dataset, read in name
    order. Image paths are referenced, not copied; embedded images (Hub Parquet bytes, data
    URLs) are stored once in the workspace's images/ folder, by content. Problems with single
    samples (missing or corrupt image, image/<image>-token mismatch, path escaping the image
    root, remote image URL, duplicate id, empty answer, very long text) are flagged on the
    sample and reported; problems with the data as a whole (truncated JSON, not UTF-8, wrong
    structure, shards whose schemas differ) stop the ingest and leave the catalog as it was.
    See docs/data.md.
    """
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from store.ingest import IngestProgress, ingest

    mapping = _parse_maps(maps)
    catalog = _open(workspace, create=True)
    console = _console()
    # DuckDB's reader reports nothing until it is done: the spinner and clock show it is alive.
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[samples]:>10,} samples"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # no stray blank line in logs and pipes
    ) as bars:
        read = bars.add_task("reading", total=None, samples=0)

        def on_progress(event: IngestProgress) -> None:
            if event.phase == "read":
                bars.update(read, completed=event.done, total=event.total, samples=event.samples)
            else:
                bars.update(read, description="writing catalog", samples=event.samples)

        report = ingest(
            catalog,
            list(paths),
            name=name,
            fmt=fmt,
            image_root=image_root,
            mapping=mapping or None,
            check_images=check_images,
            dataset_key=dataset_key,
            progress=on_progress,
            fetch_remote=fetch_remote,
        )
    console.print(
        f"[bold]{report.dataset}[/] ({report.format}, id {report.dataset_id}): "
        f"{report.n_samples:,} samples in {report.seconds:.2f}s "
        f"({report.samples_per_s:,.0f}/s, {report.engine} reader) — {report.n_new:,} new, {report.n_updated:,} updated, "
        f"{report.n_unchanged:,} unchanged, {report.n_removed:,} removed"
    )
    console.print(f"  source {report.source_path}", highlight=False)
    console.print(f"  images relative to {report.image_root}", highlight=False)
    if fetch_remote:
        failed = "".join(f"\n    {url}: {why}" for url, why in report.fetch_failed.items())
        console.print(
            f"  fetched {report.images_fetched:,} remote images"
            + (f"; failed (still remote_image):{failed}" if failed else ""),
            highlight=False,
        )
    if report.images_written or report.images_reused:
        console.print(
            f"  embedded images: {report.images_written:,} written "
            f"({report.image_bytes_written / 2**20:,.1f} MiB), {report.images_reused:,} already "
            f"stored, in {workspace.images_dir}",
            highlight=False,
        )
    if report.flags:
        kinds = ", ".join(f"{k} {v:,}" for k, v in report.flags.items())
        console.print(f"  [yellow]{report.n_flagged:,} flagged[/]: {kinds}")
        if report.flags.get("missing_image", 0) >= 0.9 * report.n_samples:
            console.print(
                "  [yellow]hint[/]: nearly every image is missing; are the paths relative to "
                "another folder? Ingest again with --image-root DIR.",
                highlight=False,
            )
        if report.flags.get("remote_image") and not fetch_remote:
            console.print(
                "  [yellow]note[/]: remote_image samples name their image by URL; Thresher "
                "does not download it unless asked: ingest again with --fetch-remote (or fetch "
                "the images yourself and point the data at the files).",
                highlight=False,
            )
    else:
        console.print("  no flagged samples")


@click.command("datasets")
@json_option
@click.pass_obj
def datasets_command(workspace: Workspace, as_json: bool) -> None:
    """List the datasets in the catalog with their sample and flag counts."""
    from rich.table import Table

    from store.datasets import flag_counts, list_datasets

    catalog = _open(workspace)
    with catalog.connect() as con:
        records = list_datasets(catalog, con)
        flags = flag_counts(catalog, None, con)
    if as_json:
        print_json([{**plain(r), "flags": flags.get(r.dataset_id, {})} for r in records])
        return
    console = _console()
    if not records:
        console.print(f"No datasets in {workspace.root}; add one with `thresher ingest PATH`.")
        return
    table = Table(title=f"Datasets in {workspace.root}", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("format")
    table.add_column("samples", justify="right")
    table.add_column("flagged", justify="right")
    table.add_column("by kind")
    table.add_column("source", overflow="fold")
    for rec in records:
        kinds = flags.get(rec.dataset_id, {})
        table.add_row(
            rec.name,
            rec.format,
            f"{rec.n_samples:,}",
            f"{rec.n_flagged:,}",
            ", ".join(f"{k} {v:,}" for k, v in kinds.items()) or "-",
            rec.source_path,
        )
    console.print(table)


def _run_counts(workspace: Workspace) -> dict[str, int] | None:
    try:
        from store import runs
    except ImportError:
        return None
    counts: dict[str, int] = {}
    for info in runs.list_runs(workspace.runs_dir):
        state = info.state  # the run folder is the truth (a dead job reads "interrupted")
        counts[state] = counts.get(state, 0) + 1
    return counts


@click.command("status")
@json_option
@click.pass_obj
def status_command(workspace: Workspace, as_json: bool) -> None:
    """Summarise the workspace: datasets, runs by status, exports."""
    catalog = _open(workspace)
    with catalog.connect() as con:
        n_ds, n_samples, n_flagged = con.execute(
            "SELECT count(*), coalesce(sum(n_samples), 0), coalesce(sum(n_flagged), 0) "
            "FROM datasets"
        ).fetchall()[0]
        n_exports, last_export = con.execute(
            "SELECT count(*), max(created_at) FROM exports"
        ).fetchall()[0]
    if as_json:
        print_json(
            {
                "workspace": str(workspace.root),
                "catalog_bytes": catalog.path.stat().st_size,
                "datasets": n_ds,
                "samples": n_samples,
                "flagged": n_flagged,
                "runs": _run_counts(workspace),
                "exports": n_exports,
                "last_export": last_export,
            }
        )
        return
    console = _console()
    size = catalog.path.stat().st_size / 1e6
    console.print(f"[bold]Workspace[/] {workspace.root} (catalog {size:.1f} MB)", highlight=False)
    console.print(f"  datasets  {n_ds} ({n_samples:,} samples, {n_flagged:,} flagged)")
    counts = _run_counts(workspace)
    if counts is None:
        console.print("  runs      (run tracking not available)")
    else:
        by = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
        console.print(f"  runs      {sum(counts.values())} ({by})")
    last = f", last {last_export:%Y-%m-%d %H:%M}" if last_export else ""
    console.print(f"  exports   {n_exports}{last}")


def _check(label: str, fn) -> tuple[str, str, str]:
    """(label, ok|warn|missing, detail): a failing probe is reported, never raised."""
    try:
        state, detail = fn()
    except Exception as exc:  # doctor must survive any broken optional dependency
        state, detail = "warn", f"{type(exc).__name__}: {exc}"
    return label, state, detail


def _torch() -> tuple[str, str]:
    if importlib.util.find_spec("torch") is None:
        return "missing", "not installed (pip install torch)"
    import torch

    cuda = torch.version.cuda or "CPU-only build"
    if not torch.cuda.is_available():
        return "ok", f"torch {torch.__version__}, CUDA {cuda}, no GPU visible"
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return "ok", f"torch {torch.__version__}, CUDA {cuda}, {len(gpus)} GPU(s): {', '.join(gpus)}"


def _faiss() -> tuple[str, str]:
    if importlib.util.find_spec("faiss") is None:
        return "ok", (
            "not installed (optional): k-means and neighbour searches run on numpy/torch; "
            "pip install 'thresher[faiss]' (CPU) or 'thresher[gpu]' (GPU build)"
        )
    import faiss

    n = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if n:
        return "ok", f"faiss {faiss.__version__} with GPU support ({n} GPU(s))"
    return "warn", f"faiss {faiss.__version__}, CPU only (k-means runs on the CPU)"


def _optional(module: str, what: str, extra: str = "gpu") -> tuple[str, str]:
    if importlib.util.find_spec(module) is None:
        return "missing", f"not installed: pip install 'thresher[{extra}]' for {what}"
    from importlib.metadata import PackageNotFoundError, version

    try:
        return "ok", f"{module} {version(module)} ({what})"
    except PackageNotFoundError:
        return "ok", f"importable ({what})"


def _nvml() -> tuple[str, str]:
    if importlib.util.find_spec("pynvml") is None:
        return "missing", "not installed: pip install 'thresher[gpu]' for GPU telemetry"
    import pynvml

    try:
        pynvml.nvmlInit()
        n = pynvml.nvmlDeviceGetCount()
        pynvml.nvmlShutdown()
    except Exception as exc:
        return "warn", f"installed, but no NVIDIA driver answered ({exc})"
    return "ok", f"{n} GPU(s) reported by NVML"


def _terminal() -> tuple[str, str]:
    env = {k: os.environ.get(k) for k in ("TERM", "COLORTERM", "NO_COLOR", "TMUX")}
    colours = _console().color_system or "none"
    shown = ", ".join(f"{k}={v}" for k, v in env.items() if v is not None) or "no TERM set"
    state = "ok" if colours in ("truecolor", "256") and not env["NO_COLOR"] else "warn"
    return state, f"colour: {colours}; {shown}"


def _graphics() -> tuple[str, str]:
    if importlib.util.find_spec("textual_image") is None:
        return "missing", "textual-image not installed: images show as text only"
    from textual_image import renderable

    # textual-image picks its renderer at import time by querying the terminal.
    kind = renderable.Image.__module__.rsplit(".", 1)[-1]
    names = {
        "sixel": "Sixel graphics",
        "tgp": "Kitty graphics protocol",
        "halfcell": "half-block cells (no pixel graphics detected)",
        "unicode": "unicode blocks (stdout is not a terminal)",
    }
    detail = names.get(kind, kind)
    if os.environ.get("TMUX"):
        detail += "; inside tmux, pixel graphics need `set -g allow-passthrough on`"
    return ("ok" if kind in ("sixel", "tgp") else "warn"), detail


def _workspace(workspace: Workspace) -> tuple[str, str]:
    if workspace.exists():
        return "ok", f"{workspace.root} (catalog present)"
    return "warn", f"{workspace.root} (no catalog yet: `thresher init` or `thresher demo`)"


@click.command("doctor")
@click.option(
    "--repair",
    is_flag=True,
    help="Repair the workspace's catalog instead: checkpoint a write-ahead log left by a killed "
    "command, read every table, and if the file is damaged keep it aside and restore the backup "
    "made before the last schema upgrade.",
)
@json_option
@click.pass_obj
def doctor(workspace: Workspace, repair: bool, as_json: bool) -> None:
    """Report what this machine offers Thresher: torch and CUDA, GPUs, faiss GPU support, vLLM,
    NVML, Ray, the terminal's colour and graphics support, and the workspace in use.

    Every probe is independent: a missing or broken package is reported, never fatal.
    `--repair` mends the catalog instead (docs/data.md, "A damaged catalog").
    """
    if repair:
        from tui.cli.errors import repair as repair_catalog

        repair_catalog(workspace.catalog_path)
        return
    from rich.table import Table

    checks: list[tuple[str, str, str]] = [
        ("python", "ok", f"{platform.python_version()} ({sys.executable})"),
        _check("torch / CUDA", _torch),
        _check("faiss", _faiss),
        _check("vLLM", lambda: _optional("vllm", "the fast CLIPPER inference engine")),
        _check("NVML", _nvml),
        _check("Ray", lambda: _optional("ray", "--ray-workers: shards on Ray actors", "ray")),
        _check("terminal", _terminal),
        _check("graphics", _graphics),
        _check("workspace", lambda: _workspace(workspace)),
    ]
    if as_json:
        print_json([{"check": c, "state": st, "detail": d} for c, st, d in checks])
        return
    marks: dict[str, Any] = {"ok": "[green]ok[/]", "warn": "[yellow]![/]", "missing": "[red]-[/]"}
    from rich.markup import escape

    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_column()
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")  # paths must stay whole to be copied
    for label, state, detail in checks:
        table.add_row(marks[state], f"[bold]{label}[/]", escape(detail))
    _console().print(table)
