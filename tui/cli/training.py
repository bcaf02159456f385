"""CLI for the fine-tune: `train` (LoRA on a manifest, or print the ms-swift / LLaMA-Factory
command), `eval` (accuracy on a held-out dataset) and `report` (selection vs accuracy)."""

from __future__ import annotations

import click

from store.catalog import Catalog
from store.errors import ThresherError
from tui.cli.engine_opts import engine_options, seeded_subset
from tui.cli.jobs import job_options, launch
from tui.cli.output import json_option, print_json


def _csv_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@click.command("train")
@click.option(
    "--manifest",
    required=True,
    metavar="PATH",
    help="Exported manifest (llava, swift or sharegpt).",
)
@click.option(
    "--model", default=None, metavar="PATH_OR_NAME", help="Base image-text-to-text model."
)
@click.option(
    "--print-command",
    type=click.Choice(["swift", "llamafactory"]),
    default=None,
    help="Print the equivalent ms-swift / LLaMA-Factory command (and dataset registration) and exit.",
)
@click.option(
    "--output-dir", default="output", show_default=True, help="Output folder for --print-command."
)
@click.option(
    "--arch",
    default=None,
    help="Model family (qwen2_vl, qwen2_5_vl, idefics3, smolvlm, llava); default: from the model's config.",
)
@click.option(
    "--target-modules",
    default=None,
    metavar="A,B",
    help="LoRA target module names (default: the family's attention+MLP projections of the language model).",
)
@click.option(
    "--exclude-modules",
    default=None,
    metavar="REGEX",
    help="Module paths never adapted (default: vision tower and projector).",
)
@click.option("--lora-r", type=int, default=16, show_default=True)
@click.option("--lora-alpha", type=int, default=32, show_default=True)
@click.option("--lora-dropout", type=float, default=0.05, show_default=True)
@click.option(
    "--lr", "--learning-rate", "learning_rate", type=float, default=1e-4, show_default=True
)
@click.option(
    "--lr-schedule",
    type=click.Choice(["cosine", "linear", "constant"]),
    default="cosine",
    show_default=True,
)
@click.option("--warmup-ratio", type=float, default=0.03, show_default=True)
@click.option("--weight-decay", type=float, default=0.0, show_default=True)
@click.option("--epochs", type=float, default=1.0, show_default=True)
@click.option(
    "--batch-size", type=int, default=1, show_default=True, help="Samples per forward pass."
)
@click.option(
    "--grad-accum", type=int, default=8, show_default=True, help="Micro-batches per optimizer step."
)
@click.option("--max-steps", type=int, default=None, help="Stop after N optimizer steps.")
@click.option(
    "--max-length", type=int, default=2048, show_default=True, help="Longer samples are skipped."
)
@click.option(
    "--precision",
    type=click.Choice(["auto", "bf16", "fp16", "fp32"]),
    default="auto",
    show_default=True,
    help="auto: bf16 on a GPU that has it, else fp32.",
)
@click.option("--gradient-checkpointing", is_flag=True, help="Trade compute for activation memory.")
@click.option(
    "--save-steps",
    type=int,
    default=50,
    show_default=True,
    help="Checkpoint (and resume point) every N steps.",
)
@click.option("--keep-checkpoints", type=int, default=2, show_default=True)
@click.option(
    "--image-max-pixels",
    type=int,
    default=None,
    help="Downscale larger images to this many pixels.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")
@job_options
@click.pass_obj
def train_command(workspace, manifest, model, print_command, output_dir, target_modules, detach, seed, name, **opts) -> None:  # fmt: skip
    """LoRA fine-tune of an image-text-to-text model on an exported manifest, as a job.

    Loss is on assistant tokens only; checkpoints every --save-steps; rerunning the same command
    resumes from the last checkpoint. The adapter and training_summary.json land in the run folder.
    """
    from selection.finetune.config import FinetuneConfig

    config = FinetuneConfig(
        manifest=manifest,
        model=model or "",
        target_modules=_csv_list(target_modules),
        seed=seed,
        **opts,
    )
    if print_command:
        from selection.finetune.commands import render
        from selection.finetune.data import read_manifest

        if model:
            config.validate()
        click.echo(render(print_command, read_manifest(manifest), config, output_dir), nl=False)
        return
    if not model:
        raise ThresherError("train needs --model PATH_OR_NAME (or --print-command to print one)")
    from selection.finetune import register
    from selection.finetune.train import create_finetune_run

    register()
    catalog = Catalog.open(workspace)
    run_dir = create_finetune_run(catalog, config, seed=seed, run_id=name)
    status = launch(catalog, run_dir, detach)
    if status == "done":
        from selection.finetune.train import read_training_summary

        s = read_training_summary(run_dir) or {}
        click.echo(
            f"Adapter: {s.get('adapter')}  ({s.get('steps')} steps, loss {s.get('first_loss', 0):.4f}"
            f" -> {s.get('final_loss', 0):.4f}, {s.get('train_time_s', 0):.1f}s)\n"
            f"Evaluate it: thresher eval --model {config.model} --adapter {s.get('adapter')} "
            "--dataset HELD_OUT"
        )


@click.command("eval")
@engine_options(
    model_help="Base model: a local folder or a hub name (for --engine openai: the served name).",
    limit_help="Evaluate a seeded subset of N samples.",
)
@click.option(
    "--adapter", default=None, metavar="PATH", help="LoRA adapter folder from `thresher train`."
)
@click.option("--dataset", required=True, metavar="NAME", help="Held-out dataset in the catalog.")
@job_options
@click.pass_obj
def eval_command(workspace, dataset, limit, engine_opt, detach, seed, name, **opts) -> None:
    """Answer a held-out dataset (greedy, as in CLIPPER) and store accuracy, overall and per task.

    With --adapter, the result is linked to the selection the adapter was trained on (read from
    its training summary), which is what `thresher report` tabulates.
    """
    from selection.finetune.evaluate import (
        METHOD,
        EvalConfig,
        provenance,
        record_finished_evals,
        register,
    )
    from tui.cli.jobs import start_run

    if opts["adapter"]:
        from pathlib import Path

        opts["adapter"] = str(Path(opts["adapter"]).expanduser().resolve())
    config = EvalConfig(engine_opts=engine_opt, limit=limit, **opts).validate()
    config.provenance = provenance(config.adapter)
    from selection.finetune.evaluate import base_model_mismatch

    warning = base_model_mismatch(config.model, config.provenance)
    if warning:
        click.secho(warning, fg="yellow", err=True)
    sample_ids = seeded_subset(workspace, dataset, limit, seed) if limit else None
    register()
    run_id = start_run(
        workspace, METHOD, dataset, config, detach, seed=seed, name=name, sample_ids=sample_ids
    )
    if detach:
        click.echo("The result is recorded when you next run `thresher report` after it finishes.")
        return
    catalog = Catalog.open(workspace)
    record_finished_evals(catalog, only=[run_id])
    from store.evaluations import get_evaluation

    with catalog.connect() as con:
        ev = get_evaluation(con, run_id)
    tasks = ", ".join(
        f"{t} {v['accuracy'] * 100:.1f}% ({v['n']})" for t, v in sorted(ev.per_task.items())
    )
    click.echo(
        f"Accuracy {ev.accuracy * 100:.2f}% on {ev.n} samples of {dataset} [{ev.label}]: {tasks}"
    )


@click.command("report")
@click.option("--dataset", required=True, metavar="NAME", help="The evaluated (held-out) dataset.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "markdown"]),
    default="table",
    show_default=True,
)
@json_option
@click.pass_obj
def report_command(workspace, dataset: str, fmt: str, as_json: bool) -> None:
    """Selection vs accuracy (CLIPPER Table I): accuracy, training samples, data reduction and
    training time per evaluated selection, with deltas against full-data fine-tuning."""
    from selection.finetune.evaluate import record_finished_evals
    from selection.finetune.report import build_report, rich_table, to_csv, to_markdown
    from store.evaluations import evaluated_datasets, list_evaluations

    if not workspace.exists():
        raise ThresherError(f"no workspace at {workspace.root}; run `thresher demo` first")
    catalog = Catalog.open(workspace)
    record_finished_evals(catalog)  # evals that finished detached since
    with catalog.connect() as con:
        evals = list_evaluations(con, dataset)
        known = evaluated_datasets(con)
    if not evals:
        raise ThresherError(
            f"no evaluations on dataset {dataset!r} (evaluated: {', '.join(known) or 'none'}); "
            f"run `thresher eval --model M --dataset {dataset}` first"
        )
    rows = build_report(evals)
    if as_json:
        print_json(rows)
    elif fmt == "csv":
        click.echo(to_csv(rows), nl=False)
    elif fmt == "markdown":
        click.echo(to_markdown(rows), nl=False)
    else:
        from rich.console import Console

        from selection.finetune.report import rich_task_table

        console = Console()
        console.print(rich_table(rows, title=f"Selection vs accuracy on {dataset}"))
        per_task = rich_task_table(rows)
        if per_task is not None:
            console.print(per_task)


def register(cli: click.Group) -> None:
    """Add `train`, `eval` and `report`."""
    cli.add_command(train_command)
    cli.add_command(eval_command)
    cli.add_command(report_command)
