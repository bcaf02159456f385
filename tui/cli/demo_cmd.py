"""`thresher demo`: the product in miniature, as an ordered list of steps over one shared context.

Each step is a small function `step(ctx)`; later issues extend the demo by appending to STEPS
(run OFA and CLIPPER, export, open the workstation). Every step is idempotent, so running the
demo again reuses what an earlier run built.
"""

from __future__ import annotations

import sys
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
    clipper_samples: int = 100
    demo_clip: Path | None = None  # the trained demo CLIP's folder
    results: dict[str, Any] = field(default_factory=lambda: {"runs": []})

    @property
    def ofa_run(self) -> str:
        return f"{self.name}-ofa"

    @property
    def clipper_run(self) -> str:
        return f"{self.name}-clipper"


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


def _thresher(ctx: DemoContext, *args: str) -> None:
    """Run a `thresher` subcommand exactly as a user would type it, in this workspace."""
    from tui.cli import cli

    cli.main(args=["--workspace", str(ctx.workspace.root), *args], standalone_mode=False)


def demo_clip_step(ctx: DemoContext) -> None:
    """Train the demo's small CLIP on the demo images and scene captions (cached, ~1 CPU minute)."""
    from selection.demo.clip import STEPS, train_demo_clip

    assert ctx.data_file is not None
    with _bars(ctx.console) as bars:
        task = bars.add_task("training the demo CLIP", total=STEPS)
        ctx.demo_clip = train_demo_clip(
            ctx.data_file,
            ctx.workspace.models_dir / "demo-clip",
            progress=lambda step, total, loss: bars.update(task, completed=step, total=total),
        )
    ctx.console.print(
        f"  demo CLIP in {ctx.demo_clip}: trained here on the demo world only, so OFA's demo "
        "clusters follow colours, shapes and tasks. Real users keep ViT-B-32 with OpenAI weights.",
        highlight=False,
    )


def ofa_step(ctx: DemoContext) -> None:
    """OFA with the demo CLIP (nothing is downloaded): encode, k-means, selector, select."""
    from selection.demo.clip import files

    assert ctx.demo_clip is not None, "the demo CLIP step runs first (STEPS)"
    config, checkpoint = files(ctx.demo_clip)
    _thresher(
        ctx,
        "run",
        "ofa",
        "--dataset",
        ctx.name,
        "--encoder",
        str(config),
        "--pretrained",
        str(checkpoint),
        "--name",
        ctx.ofa_run,
    )
    ctx.results["runs"].append(ctx.ofa_run)


def clipper_step(ctx: DemoContext) -> None:
    """CLIPPER with the offline demo VLM on a seeded subset (a 135M model on 2 CPU cores is slow)."""
    if ctx.clipper_samples <= 0:
        ctx.console.print("  skipped (--clipper-samples 0)")
        return
    from selection.demo.model import build_demo_model

    with ctx.console.status("  building the demo VLM (SmolLM2-135M + untrained vision tower)"):
        model = build_demo_model(ctx.workspace.models_dir / "demo-vlm")
    ctx.console.print(
        f"  [yellow]demo model[/] at {model}: reads text, not images. "
        "Real users pass --model with a local path or hub name.",
        highlight=False,
    )
    _thresher(
        ctx,
        "run",
        "clipper",
        "--dataset",
        ctx.name,
        "--engine",
        "transformers",
        "--model",
        str(model),
        "--limit",
        str(ctx.clipper_samples),
        "--m",
        "10",
        "--assignment",
        "balanced",
        "--max-new-tokens",
        "12",
        "--name",
        ctx.clipper_run,
    )
    ctx.results["runs"].append(ctx.clipper_run)


def export_step(ctx: DemoContext) -> None:
    """Export OFA's selection as a LLaVA manifest (ms-swift and LLaMA-Factory work the same way)."""
    _thresher(ctx, "export", "--dataset", ctx.name, "--run", ctx.ofa_run, "--format", "llava")


# (title, step) in order; extend by appending.
STEPS: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("Build the demo dataset", build_step),
    ("Ingest it", ingest_step),
    ("Train the demo CLIP on it", demo_clip_step),
    ("Run OFA on it", ofa_step),
    ("Run CLIPPER on a subset with the demo VLM", clipper_step),
    ("Export the OFA selection as a manifest", export_step),
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
@click.option(
    "--clipper-samples",
    default=100,
    show_default=True,
    type=click.IntRange(0, None),
    help="Samples CLIPPER probes with the demo VLM (0 skips CLIPPER; it is the slow step on a CPU).",
)
@click.option(
    "--data-only",
    is_flag=True,
    help="Only build and ingest the dataset (no OFA, CLIPPER or export).",
)
@click.option(
    "--tui/--no-tui",
    "open_tui",
    default=True,
    show_default=True,
    help="Open the workstation at the end when run in a terminal.",
)
@click.pass_obj
def demo_command(
    workspace: Workspace,
    samples: int,
    seed: int,
    name: str,
    clipper_samples: int,
    data_only: bool,
    open_tui: bool,
) -> None:
    """The whole product offline: build and ingest a demo dataset, run OFA and CLIPPER on it,
    export OFA's selection, then open the workstation (or print a summary outside a terminal).

    Images are drawn with Pillow (shapes, colours, counts, positions, short words); questions come
    in task families with exact answers: yes/no, multiple choice (lettered options), counting,
    short answer, multi-turn, plus a few text-only samples. Nothing is downloaded. Running it again
    reuses the files and duplicates nothing.
    """
    from rich.console import Console

    console = Console(soft_wrap=True)  # long paths stay copyable
    ctx = DemoContext(
        workspace=workspace,
        samples=samples,
        seed=seed,
        name=name,
        console=console,
        clipper_samples=clipper_samples,
    )
    steps = STEPS[:2] if data_only else STEPS
    for i, (title, step) in enumerate(steps, 1):
        console.print(f"[bold cyan]{i}/{len(steps)}[/] {title}")
        step(ctx)
    console.print(f"[green]Demo ready[/] in workspace {workspace.root}", highlight=False)
    if data_only:
        return
    if open_tui and sys.stdin.isatty() and sys.stdout.isatty():
        _thresher(ctx, "tui")
    else:
        _thresher(ctx, "runs")
        console.print(
            f"Open the workstation with: thresher --workspace {workspace.root} tui",
            highlight=False,
        )


def register(cli: click.Group) -> None:
    """Add this module's commands to the top-level group."""
    cli.add_command(demo_command)
