"""`thresher run ofa`, `thresher ofa apply` and `thresher run baseline` through the real click commands."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

from click.testing import CliRunner

from tests.ofa.conftest import TINY_CLIP, result


def _invoke(ws, *args):
    from tui.cli import cli

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = CliRunner().invoke(cli, ["--workspace", str(ws.root), *args], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    return out.output


def test_run_ofa_then_apply_then_baseline(ofa_ws, ofa_run):
    ws, _ = ofa_ws
    tiny = ["--encoder", TINY_CLIP, "--pretrained", "none", "--batch-size", "32"]
    _invoke(ws, "run", "ofa", "--dataset", "demo", "--k", "4", "--lr", "0.01", "--hidden", "32",
            *tiny, "--name", "cli-ofa")  # fmt: skip
    run_dir = ws.runs_dir / "cli-ofa"
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["method"] == "ofa" and meta["params"]["k"] == 4
    assert (run_dir / "selector" / "selector.safetensors").exists()
    n_sel = sum(result(run_dir)["selected"])
    assert n_sel > 0

    out = _invoke(ws, "ofa", "apply", "--selector", "cli-ofa", "--dataset", "other",
                  "--budget", "10", "--name", "cli-apply")  # fmt: skip
    assert "no retraining" in out
    applied = json.loads((ws.runs_dir / "cli-apply" / "run.json").read_text())
    assert applied["method"] == "ofa-apply"
    assert sum(result(ws.runs_dir / "cli-apply")["selected"]) == 10

    _invoke(ws, "run", "baseline", "random", "--dataset", "demo", "--from-run", "cli-ofa",
            "--name", "cli-random")  # fmt: skip
    # OFA again on the same features: no encoding, and the encoder recorded is the source run's
    _invoke(ws, "run", "ofa", "--dataset", "demo", "--k", "4", "--from-run", "cli-ofa",
            "--epochs", "2", "--name", "cli-ofa-reuse")  # fmt: skip
    reuse = json.loads((ws.runs_dir / "cli-ofa-reuse" / "selector" / "selector.json").read_text())
    assert reuse["encoder"] == TINY_CLIP and reuse["pretrained"] == "none" and reuse["epochs"] == 2

    base = json.loads((ws.runs_dir / "cli-random" / "run.json").read_text())
    assert base["params"]["budget"] == n_sel  # same size as the OFA selection
    assert sum(result(ws.runs_dir / "cli-random")["selected"]) == n_sel


def test_bad_encoder_is_one_line_exit_2(ofa_ws):
    ws, _ = ofa_ws
    proc = subprocess.run(
        [sys.executable, "-m", "tui", "--workspace", str(ws.root), "run", "ofa", "--dataset",
         "demo", "--encoder", "No-Such-Model", "--name", "cli-bad"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "not an open_clip model" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
