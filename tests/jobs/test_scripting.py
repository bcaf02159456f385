"""Scripting the CLI: --json documents, exit codes, NO_COLOR, offline models and `thresher models`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.helpers.datasets import make_demo_dataset, write_run
from tui.cli import cli


def _invoke(ws, *args, **kw):
    return CliRunner().invoke(cli, ["-w", str(ws.root), *args], **kw)


def test_json_documents_for_scripts(catalog, workspace):
    import pyarrow as pa

    make_demo_dataset(catalog, n=6, seed=0, name="demo")
    write_run(catalog, "ofa-demo", "demo", pa.table({"sample_id": [1], "selected": [True]}))
    datasets = json.loads(_invoke(workspace, "datasets", "--json").output)
    assert [d["name"] for d in datasets] == ["demo"] and datasets[0]["n_samples"] == 6
    assert isinstance(datasets[0]["flags"], dict)
    status = json.loads(_invoke(workspace, "status", "--json").output)
    assert status["datasets"] == 1 and status["samples"] == 6
    assert status["workspace"] == str(workspace.root)
    found = json.loads(_invoke(workspace, "runs", "--json").output)
    assert [r["run_id"] for r in found] == ["ofa-demo"] and "state" in found[0]
    checks = json.loads(_invoke(workspace, "doctor", "--json").output)
    assert {"python", "torch / CUDA", "faiss", "NVML"} <= {c["check"] for c in checks}
    assert all(c["state"] in ("ok", "warn", "missing") for c in checks)


def test_usage_errors_exit_2_and_attach_fails_with_the_run(catalog, workspace):
    from tui.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["-w", str(workspace.root), "runs", "--no-such-option"])
    assert exc.value.code == 2
    import pyarrow as pa

    from store import runs

    make_demo_dataset(catalog, n=4, seed=0, name="demo")
    run_dir = write_run(
        catalog, "r-failed", "demo", pa.table({"sample_id": [1], "selected": [True]})
    )
    runs.write_status(run_dir, "failed", error="ValueError: boom")
    res = _invoke(workspace, "attach", "r-failed")
    assert res.exit_code == 1 and "failed" in res.output and "boom" in res.output
    runs.write_status(run_dir, "done", error=None)
    assert _invoke(workspace, "attach", "r-failed").exit_code == 0


def test_no_color_strips_styles(workspace, monkeypatch):
    import click

    @cli.command("styled-probe", hidden=True)
    def probe() -> None:
        click.secho("warning", fg="yellow")

    try:
        forced = _invoke(workspace, "styled-probe", color=True)
        assert "\x1b[" in forced.output
        monkeypatch.setenv("NO_COLOR", "1")
        plain = _invoke(workspace, "styled-probe", color=True)
        assert plain.output == "warning\n"
    finally:
        cli.commands.pop("styled-probe")


def _fake_hub_cache(root, repo_id: str, files: dict[str, str]) -> None:
    """The layout huggingface_hub writes: models--ORG--NAME/{refs/main, snapshots/REV/...}."""
    folder = root / ("models--" + repo_id.replace("/", "--"))
    rev = "0123456789abcdef0123456789abcdef01234567"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(rev)
    snap = folder / "snapshots" / rev
    snap.mkdir(parents=True)
    for name, text in files.items():
        (snap / name).write_text(text)


def test_offline_fails_fast_for_uncached_names_and_models_lists_the_cache(
    tmp_path, workspace, monkeypatch
):
    from huggingface_hub import constants

    from selection.models.resolve import check_open_clip, resolve_model
    from store.errors import ThresherError

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    _fake_hub_cache(cache, "Qwen/Qwen2-VL-2B-Instruct", {"config.json": "{}"})
    _fake_hub_cache(cache, "timm/ViT-B-16-SigLIP", {"open_clip_config.json": "{}"})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model("Qwen/Qwen2-VL-2B-Instruct") == "Qwen/Qwen2-VL-2B-Instruct"
    with pytest.raises(ThresherError, match="offline .* not in the Hugging Face cache"):
        resolve_model("Qwen/Qwen2.5-VL-7B-Instruct")
    check_open_clip("hf-hub:timm/ViT-B-16-SigLIP")
    with pytest.raises(ThresherError, match="--encoder hf-hub:timm/nope"):
        check_open_clip("hf-hub:timm/nope")
    with pytest.raises(ThresherError, match="no such folder"):
        resolve_model(str(tmp_path / "models" / "missing"))

    listed = json.loads(_invoke(workspace, "models", "--json").output)
    by_name = {m["name"]: m["kind"] for m in listed}
    assert by_name == {
        "Qwen/Qwen2-VL-2B-Instruct": "transformers",
        "hf-hub:timm/ViT-B-16-SigLIP": "open_clip",
    }
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    # --offline turns it on for the command (and the jobs it starts).
    import os

    _invoke(workspace, "--offline", "models")
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
