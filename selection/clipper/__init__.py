"""CLIPPER (papers/clipper.txt, III-B): zero-shot split, one-shot ICL probing, subsets, perplexity."""

from __future__ import annotations

METHOD = "clipper"
