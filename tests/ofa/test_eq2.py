"""OFA's feature is the paper's Eq. 2 by default; selectors and reused embeddings keep their own."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from selection.ofa.apply import apply_config
from store import runs
from store.errors import ThresherError
from tests.ofa.conftest import config, run


def test_default_is_eq2_and_the_selector_records_it(ofa_run):
    assert runs.read_run_json(ofa_run)["params"]["encode"]["normalize"] == "concat"
    meta = json.loads((ofa_run / "selector" / "selector.json").read_text())
    assert meta["normalize"] == "concat"
    assert apply_config(ofa_run).encode.normalize == "concat"
    stored = np.load(sorted((ofa_run / "embeddings").glob("part-*.npy"))[0]).astype(np.float32)
    encoded = stored[np.any(stored != 0, axis=1)]
    half = stored.shape[1] // 2
    # unit vectors whose halves are not all of length sqrt(1/2) (that would be per-tower)
    np.testing.assert_allclose(np.linalg.norm(encoded, axis=1), 1.0, atol=3e-3)
    assert np.ptp(np.linalg.norm(encoded[:, :half], axis=1)) > 1e-3


def test_a_selector_from_before_eq2_is_applied_per_tower(ofa_run, tmp_path):
    old = tmp_path / "selector"
    shutil.copytree(ofa_run / "selector", old)
    meta = json.loads((old / "selector.json").read_text())
    del meta["normalize"]
    (old / "selector.json").write_text(json.dumps(meta))
    assert apply_config(old).encode.normalize == "per-tower"


def test_reused_embeddings_must_be_normalised_the_same_way(ofa_ws, ofa_run):
    ws, catalog = ofa_ws
    cfg = config()
    cfg.encode.from_run = ofa_run.name
    cfg.encode.normalize = "per-tower"
    with pytest.raises(ThresherError, match="normalised concat, this run asks for per-tower"):
        run(catalog, "ofa", "demo", cfg, run_id="eq2-mismatch")
