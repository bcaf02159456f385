"""Shared fixtures: a fresh workspace per test, CPU only, fixed torch threads."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def workspace(tmp_path):
    from store.workspace import Workspace

    return Workspace(tmp_path / "ws").ensure()


@pytest.fixture
def catalog(workspace):
    from store.catalog import Catalog

    return Catalog.open(workspace)
