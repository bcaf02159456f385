"""bench/gpu_smoke.py on a machine without a GPU: every GPU part skipped with its reason, exit 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_smoke_skips_every_gpu_part_with_a_reason_on_cpu(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: this test checks the CPU-only behaviour")
    out = tmp_path / "smoke.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_smoke.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(out.read_text())
    parts = figures["parts"]
    assert set(parts) == {
        "clip_encode", "kmeans", "vllm_zero_shot", "nvml", "lora_step", "ddp_lora_step",
    }  # fmt: skip
    assert all(p["status"] == "skipped" and p["reason"] for p in parts.values())
    assert figures["env"]["gpus"] == [] and figures["env"]["torch"] == torch.__version__
