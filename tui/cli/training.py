"""CLI for the fine-tune: `train` (LoRA on a manifest, or print the ms-swift / LLaMA-Factory
command), `eval` (accuracy on a held-out dataset) and `report` (selection vs accuracy)."""

from __future__ import annotations

import click

from selection.finetune.config import FinetuneConfig
from selection.finetune.evaluate import METHOD, EvalConfig
from store.catalog import Catalog
from store.errors import ThresherError
from tui.cli.config_opts import config_options
from tui.cli.jobs import job_options, launch, start_run
from tui.cli.output import json_option, print_json


@click.command("train")
@click.option(
    "--print-command",
    type=click.Choice(["swift", "llamafactory"]),
    default=None,
    help="Print the equivalent ms-swift / LLaMA-Factory command (and dataset registration) and exit.",
)
@click.option(
    "--output-dir", default="output", show_default=True, help="Output folder for --print-command."
)
@config_options(FinetuneConfig)
@job_options
@click.pass_obj
def train_command(workspace, print_command, output_dir, params, detach, seed, name) -> None:  # fmt: skip
    """LoRA fine-tune of an image-text-to-text model on an exported manifest, as a job.

    Loss is on assistant tokens only; checkpoints every --save-steps; rerunning the same command
    resumes from the last checkpoint. The adapter and training_summary.json land in the run folder.
    """
    config = FinetuneConfig.from_dict({**params, "seed": seed})
    if print_command:
        from selection.finetune.commands import render
        from store.export.read import read_manifest

        manifest = read_manifest(config.manifest)
        click.echo(render(print_command, manifest, config, output_dir), nl=False)
        return
    if not config.model:
        raise ThresherError("train needs --model PATH_OR_NAME (or --print-command to print one)")
    from selection.finetune.train import create_finetune_run

    catalog = Catalog.open(workspace)
    run_dir = create_finetune_run(catalog, config, seed=seed, run_id=name)
    if launch(catalog, run_dir, detach).status == "done":
        from selection.finetune.train import read_training_summary

        s = read_training_summary(run_dir) or {}
        click.echo(
            f"Adapter: {s.get('adapter')}  ({s.get('steps')} steps, loss {s.get('first_loss', 0):.4f}"
            f" -> {s.get('final_loss', 0):.4f}, {s.get('train_time_s', 0):.1f}s)\n"
            f"Evaluate it: thresher eval --model {config.model} --adapter {s.get('adapter')} "
            "--dataset HELD_OUT"
        )


@click.command("eval")
@config_options(EvalConfig)
@click.option("--dataset", required=True, metavar="NAME", help="Held-out dataset in the catalog.")
@job_options
@click.pass_obj
def eval_command(workspace, dataset, params, detach, seed, name) -> None:
    """Answer a held-out dataset (greedy, as in CLIPPER) and store accuracy, overall and per task.

    With --adapter, the result is linked to the selection the adapter was trained on (read from
    its training summary), which is what `thresher report` tabulates.
    """
    from selection.finetune.evaluate import base_model_mismatch, provenance, record_finished_evals

    if params["adapter"]:
        from pathlib import Path

        params["adapter"] = str(Path(params["adapter"]).expanduser().resolve())
    config = EvalConfig.from_dict({**params, "provenance": provenance(params["adapter"])})
    warning = base_model_mismatch(config.model, config.provenance)
    if warning:
        click.secho(warning, fg="yellow", err=True)
    run_id = start_run(workspace, METHOD, dataset, config, detach, seed=seed, name=name)
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
