"""`thresher demo`: the product in miniature, as an ordered list of steps over one shared context.

Each step is a small function `step(ctx)`; later issues extend the demo by appending to STEPS
(run OFA and CLIPPER, export, open the workstation). Every step is idempotent, so running the
demo again reuses what an earlier run built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from store.workspace import Workspace


@dataclass
class DemoContext:
    workspace: Workspace
    samples: int
    seed: int
    name: str
    console: Any  # rich.console.Console
    catalog: Any = None  # store.catalog.Catalog, opened by the first step
    data_file: Path | None = None
    results: dict[str, Any] = field(default_factory=dict)  # what steps leave for later steps


def _bars(console: Any, in_bytes: bool = False) -> Any:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("  [progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn() if in_bytes else MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # no stray blank line in logs and pipes
    )


def build_step(ctx: DemoContext) -> None:
    """Draw the demo images and write demo.json under <workspace>/data/<name>/."""
    from store.catalog import Catalog
    from store.demo import build_demo

    ctx.catalog = ctx.catalog or Catalog.open(ctx.workspace)
    out_dir = ctx.workspace.data_dir / ctx.name
    with _bars(ctx.console) as bars:
        task = bars.add_task("drawing images", total=ctx.samples)
        ctx.data_file = build_demo(
            out_dir,
            n=ctx.samples,
            seed=ctx.seed,
            progress=lambda done, total: bars.update(task, completed=done, total=total),
        )
    ctx.console.print(f"  {ctx.samples:,} samples in {ctx.data_file}", highlight=False)


def ingest_step(ctx: DemoContext) -> None:
    """Ingest demo.json as dataset <name>; a second run finds every sample unchanged."""
    from store.ingest import ingest

    with _bars(ctx.console, in_bytes=True) as bars:
        task = bars.add_task("reading demo.json", total=None)

        def on_progress(event: Any) -> None:
            if event.phase == "read":
                bars.update(task, completed=event.done, total=event.total)
            else:
                bars.update(task, description="writing catalog")

        report = ingest(
            ctx.catalog, ctx.data_file, name=ctx.name, fmt="llava", progress=on_progress
        )
    ctx.results["ingest"] = report
    ctx.console.print(
        f"  dataset [bold]{report.dataset}[/]: {report.n_samples:,} samples "
        f"({report.n_new:,} new, {report.n_unchanged:,} unchanged), {report.n_flagged} flagged"
    )


# (title, step) in order; extend by appending.
STEPS: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("Build the demo dataset", build_step),
    ("Ingest it", ingest_step),
]


@click.command("demo")
@click.option(
    "--samples",
    "-n",
    default=3000,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    help="How many samples to generate (each a 224x224 PNG and a question with an exact answer).",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Generator seed: the same seed gives byte-identical files; another seed gives a second, "
    "different demo dataset.",
)
@click.option(
    "--name",
    default="demo",
    show_default=True,
    help="Dataset name in the catalog; files go to <workspace>/data/NAME/.",
)
@click.pass_obj
def demo_command(workspace: Workspace, samples: int, seed: int, name: str) -> None:
    """Build the offline demo dataset and ingest it into the workspace.

    Images are drawn with Pillow (shapes, colours, counts, positions, short words); questions come
    in task families with exact answers: yes/no, multiple choice (lettered options), counting,
    short answer, multi-turn, plus a few text-only samples. Nothing is downloaded. Running it again
    reuses the files and duplicates nothing.
    """
    from rich.console import Console

    console = Console(soft_wrap=True)  # long paths stay copyable
    ctx = DemoContext(workspace=workspace, samples=samples, seed=seed, name=name, console=console)
    for i, (title, step) in enumerate(STEPS, 1):
        console.print(f"[bold cyan]{i}/{len(STEPS)}[/] {title}")
        step(ctx)
    console.print(f"[green]Demo ready[/] in workspace {workspace.root}", highlight=False)


def register(cli: click.Group) -> None:
    """Add this module's commands to the top-level group."""
    cli.add_command(demo_command)
