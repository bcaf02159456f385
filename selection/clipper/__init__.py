"""CLIPPER (papers/clipper.txt, III-B): zero-shot split, one-shot ICL probing, subsets, perplexity."""

from __future__ import annotations

METHOD = "clipper"


def register() -> None:
    """Make `clipper` known to the job runner (entry points, so a detached worker needs no registry)."""
    from selection.jobs.registry import register_method

    register_method(
        METHOD,
        "selection.clipper.stages:build_stages",
        "selection.clipper.config:ClipperConfig",
        "selection.clipper.result:outputs",
    )
