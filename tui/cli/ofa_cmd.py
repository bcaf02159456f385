"""CLI for OFA: `thresher run ofa`, `thresher run baseline NAME`, and `thresher ofa apply`."""

from __future__ import annotations

import json

import click

from tui.cli.jobs import job_options, start_run


def _encode_options(fn):
    """--encoder, --pretrained, --device, --batch-size, --workers, --from-run (shared by all three)."""
    options = [
        click.option(
            "--from-run",
            default=None,
            metavar="RUN",
            help="Reuse the embeddings of this run (same dataset) instead of encoding again.",
        ),
        click.option(
            "--workers", type=int, default=2, show_default=True, help="Image-decoding threads."
        ),
        click.option(
            "--batch-size", type=int, default=64, show_default=True, help="Images per forward pass."
        ),
        click.option(
            "--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."
        ),
    ]
    for opt in options:
        fn = opt(fn)
    return fn


def _encoder_choice(fn):
    fn = click.option(
        "--pretrained",
        default="openai",
        show_default=True,
        help="open_clip weights tag, a local checkpoint file, or 'none' (random weights, tests only).",
    )(fn)
    return click.option(
        "--encoder",
        default="ViT-B-32",
        show_default=True,
        help="open_clip model name, or a model-config .json.",
    )(fn)


def _size_options(fn):
    fn = click.option(
        "--budget",
        type=int,
        default=None,
        metavar="N",
        help="Keep N samples in total instead of a ratio.",
    )(fn)
    return click.option(
        "--ratio",
        type=float,
        default=0.15,
        show_default=True,
        help="Fraction kept per cluster (r).",
    )(fn)


def _encode_config(encoder, pretrained, device, batch_size, workers, from_run):
    from pathlib import Path

    from selection.ofa.config import EncodeConfig

    # Files are stored absolute: a detached worker does not share our working directory.
    if encoder.endswith(".json") and Path(encoder).exists():
        encoder = str(Path(encoder).resolve())
    if Path(pretrained).expanduser().is_file():
        pretrained = str(Path(pretrained).expanduser().resolve())

    if pretrained.lower() == "none":
        click.secho(
            "warning: --pretrained none gives a random-weight encoder; selections are for tests only.",
            fg="yellow",
            err=True,
        )
    return EncodeConfig(
        encoder=encoder,
        pretrained=pretrained,
        device=device,
        batch_size=batch_size,
        workers=workers,
        from_run=from_run,
    )


@click.command("ofa")
@click.option("--dataset", required=True, metavar="NAME", help="Dataset in the catalog.")
@click.option("--k", type=int, default=20, show_default=True, help="k-means clusters.")
@click.option("--rho", type=float, default=50.0, show_default=True, help="Core-set percentile.")
@click.option("--epochs", type=int, default=3, show_default=True, help="Selector epochs (E).")
@click.option(
    "--lr", type=float, default=1e-3, show_default=True, help="Selector Adam learning rate."
)
@click.option("--hidden", type=int, default=256, show_default=True, help="Selector hidden width.")
@click.option("--iterations", type=int, default=20, show_default=True, help="Lloyd iterations.")
@_size_options
@_encoder_choice
@_encode_options
@job_options
@click.pass_obj
def ofa_command(workspace, dataset, k, rho, epochs, lr, hidden, iterations, ratio, budget,
                encoder, pretrained, device, batch_size, workers, from_run, detach, seed, name):  # fmt: skip
    """OFA: encode with CLIP, cluster, train the under-trained selector, keep the least confident.

    The trained selector lands in <run>/selector/ and can be applied to other datasets with
    `thresher ofa apply`.
    """
    import selection.ofa.stages  # noqa: F401  (registers the method)
    from selection.ofa.config import OFAConfig

    enc = _encode_config(encoder, pretrained, device, batch_size, workers, from_run)
    if from_run:
        _adopt_encoder(workspace, enc)
    cfg = OFAConfig(
        encode=enc,
        k=k, rho=rho, epochs=epochs, lr=lr, hidden=hidden, kmeans_iterations=iterations,
        ratio=ratio, budget=budget, seed=seed,
    ).validate()  # fmt: skip
    start_run(workspace, "ofa", dataset, cfg, detach, seed=seed, name=name)


@click.command("baseline")
@click.argument("method", type=click.Choice(["random", "clip-score", "typiclust", "semdedup"]))
@click.option("--dataset", required=True, metavar="NAME", help="Dataset in the catalog.")
@click.option(
    "--k", type=int, default=20, show_default=True, help="Clusters (typiclust, semdedup)."
)
@click.option(
    "--threshold", type=float, default=0.95, show_default=True, help="SemDeDup cosine threshold."
)
@click.option(
    "--neighbors", type=int, default=20, show_default=True, help="TypiClust neighbours per sample."
)
@_size_options
@_encoder_choice
@_encode_options
@job_options
@click.pass_obj
def baseline_command(workspace, method, dataset, k, threshold, neighbors, ratio, budget,
                     encoder, pretrained, device, batch_size, workers, from_run, detach, seed, name):  # fmt: skip
    """A baseline selection on the same CLIP embeddings as OFA.

    With --from-run and no --budget, the size matches that run's selection.
    """
    import selection.ofa.baselines  # noqa: F401  (registers the methods)
    from selection.ofa.config import BaselineConfig

    enc = _encode_config(encoder, pretrained, device, batch_size, workers, from_run)
    if from_run:
        _adopt_encoder(workspace, enc)
        if budget is None:
            budget = _selected_count(workspace, from_run)
    cfg = BaselineConfig(
        name=method, encode=enc, k=k, ratio=ratio, budget=budget,
        typiclust_neighbors=neighbors, semdedup_threshold=threshold, seed=seed,
    ).validate()  # fmt: skip
    start_run(workspace, f"baseline:{method}", dataset, cfg, detach, seed=seed, name=name)


def _adopt_encoder(workspace, enc) -> None:
    """With --from-run the features are that run's: record its encoder, not our defaults."""
    from store import runs
    from store.errors import ThresherError

    meta = runs.read_run_json(runs.resolve_run_dir(workspace.runs_dir, enc.from_run))
    other = (meta.get("params") or {}).get("encode")
    if not isinstance(other, dict):
        raise ThresherError(
            f"--from-run {enc.from_run}: a {meta.get('method')} run has no OFA embeddings; "
            "pass an ofa, ofa-apply or baseline run"
        )
    enc.encoder, enc.pretrained = other["encoder"], other["pretrained"]


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
@click.option("--dataset", required=True, metavar="NAME", help="Dataset to select from.")
@_size_options
@click.option(
    "--pretrained",
    default=None,
    help="Where the selector's encoder weights are now (default: the tag it was trained with).",
)
@_encode_options
@job_options
@click.pass_obj
def apply_command(workspace, selector, dataset, ratio, budget, pretrained, device, batch_size,
                  workers, from_run, detach, seed, name):  # fmt: skip
    """Select from DATASET with a saved selector: encode, nearest stored centroid, score, select.

    Nothing is retrained; the run's method is `ofa-apply`.
    """
    from pathlib import Path

    import selection.ofa.stages  # noqa: F401  (registers the method)
    from selection.ofa.apply import apply_config
    from store import runs

    path = Path(selector)
    if not path.exists():
        path = runs.resolve_run_dir(workspace.runs_dir, selector)
    cfg = apply_config(
        path, ratio=ratio, budget=budget, device=device, batch_size=batch_size,
        workers=workers, seed=seed, pretrained=pretrained,
    )  # fmt: skip
    cfg.encode.from_run = from_run
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
