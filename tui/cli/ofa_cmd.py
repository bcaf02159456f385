"""CLI for OFA: `thresher run ofa`, `thresher run baseline NAME`, and `thresher ofa apply`.

Options come from the config dataclasses (selection/ofa/config.py); this module only adds what
the configs cannot know: paths made absolute, the encoder of --from-run, a baseline's budget.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from selection.ofa.config import BASELINES, BaselineConfig, OFAApplyConfig, OFAConfig
from tui.cli.config_opts import config_options
from tui.cli.jobs import job_options, start_run

_DATASET = click.option("--dataset", required=True, metavar="NAME", help="Dataset in the catalog.")


def _encode(workspace: Any, params: dict[str, Any]) -> None:
    """Make file paths absolute (a detached worker does not share our working directory), warn
    about random weights, and with --from-run record that run's encoder (its features are ours)."""
    enc = params["encode"]
    if enc["encoder"].endswith(".json") and Path(enc["encoder"]).exists():
        enc["encoder"] = str(Path(enc["encoder"]).resolve())
    if Path(enc["pretrained"]).expanduser().is_file():
        enc["pretrained"] = str(Path(enc["pretrained"]).expanduser().resolve())
    if enc["pretrained"].lower() == "none":
        click.secho(
            "warning: --pretrained none gives a random-weight encoder; selections are for tests only.",
            fg="yellow",
            err=True,
        )
    if enc["from_run"]:
        _adopt_encoder(workspace, enc)


@click.command("ofa")
@_DATASET
@config_options(OFAConfig)
@job_options
@click.pass_obj
def ofa_command(workspace, dataset, params, detach, seed, name):  # fmt: skip
    """OFA: encode with CLIP, cluster, train the under-trained selector, keep the least confident.

    The trained selector lands in <run>/selector/ and can be applied to other datasets with
    `thresher ofa apply`.
    """
    _encode(workspace, params)
    start_run(workspace, "ofa", dataset, OFAConfig.from_dict(params), detach, seed=seed, name=name)


@click.command("baseline")
@click.argument("method", type=click.Choice(BASELINES))
@_DATASET
@config_options(BaselineConfig)
@job_options
@click.pass_obj
def baseline_command(workspace, method, dataset, params, detach, seed, name):  # fmt: skip
    """A baseline selection on the same CLIP embeddings as OFA.

    With --from-run and no --budget, the size matches that run's selection.
    """
    _encode(workspace, params)
    from_run = params["encode"]["from_run"]
    if from_run and params["budget"] is None:
        params["budget"] = _selected_count(workspace, from_run)
    cfg = BaselineConfig.from_dict({**params, "name": method})
    start_run(workspace, f"baseline:{method}", dataset, cfg, detach, seed=seed, name=name)


def _adopt_encoder(workspace, enc: dict[str, Any]) -> None:
    """With --from-run the features are that run's: record its encoder, not our defaults."""
    from store import runs
    from store.errors import ThresherError

    meta = runs.read_run_json(runs.resolve_run_dir(workspace.runs_dir, enc["from_run"]))
    other = (meta.get("params") or {}).get("encode")
    if not isinstance(other, dict):
        raise ThresherError(
            f"--from-run {enc['from_run']}: a {meta.get('method')} run has no OFA embeddings; "
            "pass an ofa, ofa-apply or baseline run"
        )
    enc["encoder"], enc["pretrained"] = other["encoder"], other["pretrained"]


def _selected_count(workspace, run: str) -> int | None:
    """How many samples the other run selected (None if it has no finished result)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from store import runs

    folder = runs.resolve_run_dir(workspace.runs_dir, run)
    files = runs.stage_files(folder, "result")
    if not files:
        return None
    table = pq.read_table(files[0].parent, columns=["selected"])
    return int(pc.sum(table.column("selected")).as_py() or 0) or None


@click.group("ofa")
def ofa_group() -> None:
    """Once-For-All: reuse a trained OFA selector on other data."""


@ofa_group.command("apply")
@click.option(
    "--selector",
    required=True,
    metavar="PATH",
    help="A finished OFA run (id or folder) or its selector/ folder.",
)
@_DATASET
@click.option(
    "--pretrained",
    default=None,
    help="Where the selector's encoder weights are now (default: the tag it was trained with).",
)
@config_options(
    OFAApplyConfig, skip=("selector", "encode.encoder", "encode.pretrained", "encode.normalize")
)
@job_options
@click.pass_obj
def apply_command(workspace, selector, dataset, pretrained, params, detach, seed, name):  # fmt: skip
    """Select from DATASET with a saved selector: encode, nearest stored centroid, score, select.

    Nothing is retrained; the run's method is `ofa-apply`.
    """
    from selection.ofa.apply import apply_config
    from store import runs

    path = Path(selector)
    if not path.exists():
        path = runs.resolve_run_dir(workspace.runs_dir, selector)
    enc = params["encode"]
    cfg = apply_config(
        path, ratio=params["ratio"], budget=params["budget"], device=enc["device"],
        batch_size=enc["batch_size"], workers=enc["workers"], shard_size=enc["shard_size"],
        pretrained=pretrained, from_run=enc["from_run"],
    )  # fmt: skip
    meta = json.loads((Path(cfg.selector) / "selector.json").read_text())
    click.echo(
        f"Selector from run {meta.get('run_id')} (k={meta['k']}, encoder {meta['encoder']}, "
        f"{meta['pretrained']}); no retraining."
    )
    start_run(workspace, "ofa-apply", dataset, cfg, detach, seed=seed, name=name)


def register(cli: click.Group) -> None:
    """Add `run ofa`, `run baseline` and the `ofa` group."""
    from tui.cli.run_cmd import run_group

    run_group.add_command(ofa_command)
    run_group.add_command(baseline_command)
    cli.add_command(ofa_group)
