"""GPU smoke test: one command on a GPU box that measures Thresher's GPU paths beside the bare
library calls they wrap, and writes one JSON of figures (about 5-10 minutes on one H100-class GPU).

    python bench/gpu_smoke.py --out gpu_smoke.json \
        [--clip ViT-B-32 --clip-pretrained openai] [--vlm Qwen/Qwen2-VL-2B-Instruct]

Parts (each is measured, skipped with a reason, or reports its error):
  clip_encode    our OFA encoder (decode pool + CLIP image/text) vs a bare encode_image/encode_text
                 forward on the same preprocessed tensors
  kmeans         faiss GPU k-means vs our CPU Lloyd, same data, same seeds, same iterations
  vllm_zero_shot our vLLM engine's generate (CLIPPER's zero-shot stage) vs bare LLM.chat on the same
                 prompts, same LLM instance
  nvml           GPU telemetry events present, only for the visible devices
  lora_step      a LoRA fine-tune job (transformers Trainer, bf16) on a tiny VLM, one GPU
  ddp_lora_step  the same with --nproc 2 (torchrun, NCCL) when two GPUs are visible

Models come from the local cache (or paths) given by flags; nothing is downloaded when
HF_HUB_OFFLINE=1. On a machine without a GPU every GPU part is skipped with its reason and the
script exits 0 (CI runs it that way). Exit status 1 means a part that could run failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class Skip(Exception):
    """This part cannot run here; the message says why."""


def _gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _need_gpu(n: int = 1) -> None:
    have = _gpus()
    if have < n:
        raise Skip(f"needs {n} visible CUDA GPU(s), found {have}")


def _timed(fn: Callable[[], Any], sync: bool = True) -> tuple[Any, float]:
    import torch

    if sync and torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if sync and torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def _images(folder: Path, n: int, size: int = 256) -> list[str]:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"img{i:05d}.jpg"
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


# ---------------------------------------------------------------- parts


def env(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    def version(mod: str) -> str | None:
        if importlib.util.find_spec(mod) is None:
            return None
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as v

        if mod == "faiss":  # faiss-cpu, faiss-gpu-cu12, conda's build: one module, many names
            import faiss

            return str(faiss.__version__)
        try:
            return v(mod)
        except PackageNotFoundError:
            return "installed"

    names = [torch.cuda.get_device_name(i) for i in range(_gpus())]
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpus": names,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "versions": {m: version(m) for m in ("transformers", "peft", "vllm", "faiss", "pynvml")},
        "offline": os.environ.get("HF_HUB_OFFLINE"),
    }


def clip_encode(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    _need_gpu()
    import torch

    from selection.ofa.config import EncodeConfig
    from selection.ofa.encode import clean_question, decode_image, encode_rows, load_encoder

    try:
        enc = load_encoder(
            EncodeConfig(encoder=args.clip, pretrained=args.clip_pretrained, device="cuda")
        )
    except Exception as exc:
        raise Skip(f"cannot load {args.clip} / {args.clip_pretrained}: {exc}") from None
    n, bs = args.clip_n, 256
    paths = _images(tmp / "clip", n)
    questions = [f"What is in picture {i}?" for i in range(n)]
    encode_rows(enc, [[p] for p in paths[:bs]], questions[:bs], [[]] * bs, batch_size=bs, workers=8)
    _, ours = _timed(
        lambda: encode_rows(
            enc, [[p] for p in paths], questions, [[]] * n, batch_size=bs, workers=8
        )
    )
    pix = torch.stack([decode_image(p, enc.preprocess, enc.image_size) for p in paths])
    tok = enc.tokenizer([clean_question(q) for q in questions])

    def bare() -> None:
        for s in range(0, n, bs):
            x, t = pix[s : s + bs].to("cuda"), tok[s : s + bs].to("cuda")
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
                enc.model.encode_image(x)
                enc.model.encode_text(t)

    bare()
    _, bare_s = _timed(bare)
    return {
        "model": f"{args.clip}/{args.clip_pretrained}",
        "n": n,
        "ours_samples_per_s": n / ours,
        "bare_forward_samples_per_s": n / bare_s,
        "note": "ours includes JPEG decode and preprocessing on a thread pool; bare starts "
        "from preprocessed tensors in host memory",
    }


def kmeans(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from selection.ofa.kmeans import faiss_uses_gpu
    from selection.ofa.kmeans import kmeans as run_kmeans

    if not faiss_uses_gpu():
        raise Skip("needs a faiss GPU build that sees a GPU (pip install 'thresher[gpu]')")
    import numpy as np

    x = np.random.default_rng(0).standard_normal((args.kmeans_n, 1024)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    gpu, gpu_s = _timed(lambda: run_kmeans(x, 20, iterations=10, seed=0, backend="faiss"), False)
    cpu, cpu_s = _timed(lambda: run_kmeans(x, 20, iterations=10, seed=0, backend="blas"), False)
    return {
        "n": args.kmeans_n,
        "d": 1024,
        "k": 20,
        "iterations": 10,
        "faiss_gpu_s": gpu_s,
        "cpu_lloyd_s": cpu_s,
        "cpu_threads": os.cpu_count(),
        "inertia_rel_diff": abs(gpu.inertia - cpu.inertia) / max(cpu.inertia, 1e-12),
        "labels_agree": float((gpu.labels == cpu.labels).mean()),
    }


def vllm_zero_shot(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    _need_gpu()
    if importlib.util.find_spec("vllm") is None:
        raise Skip("vLLM is not installed (pip install 'thresher[gpu]')")
    if not args.vlm:
        raise Skip("pass --vlm NAME_OR_PATH of a cached image-text VLM (e.g. Qwen2-VL-2B)")
    from selection.engines import load_engine, user
    from selection.engines.vllm_engine import to_messages

    paths = _images(tmp / "vlm", args.vlm_n, size=336)
    reqs = [(user("What is the main colour of this image? One word.", p),) for p in paths]
    engine: Any = load_engine(
        "vllm", args.vlm, limit_images=1, max_model_len=4096, gpu_memory_utilization=0.6
    )
    engine.generate(reqs[:4], max_new_tokens=8)  # compile and warm the caches
    ours, ours_s = _timed(lambda: engine.generate(reqs, max_new_tokens=16), False)
    import vllm

    params = vllm.SamplingParams(temperature=0.0, max_tokens=16)
    messages = [to_messages(r) for r in reqs]
    bare, bare_s = _timed(lambda: engine.llm.chat(messages, params, use_tqdm=False), False)
    same = sum(a == b.outputs[0].text.strip() for a, b in zip(ours, bare, strict=True))
    engine.close()
    return {
        "model": args.vlm,
        "n": len(reqs),
        "ours_prompts_per_s": len(reqs) / ours_s,
        "bare_llm_chat_prompts_per_s": len(reqs) / bare_s,
        "same_answers": same,
    }


def nvml(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from selection.jobs.telemetry import NVML_AVAILABLE, GpuSampler

    if not NVML_AVAILABLE:
        raise Skip("nvidia-ml-py is not installed (pip install 'thresher[gpu]')")
    sample = GpuSampler(min_interval_s=0).sample()
    if not sample:
        raise Skip("NVML answered with no device (no driver, or CUDA_VISIBLE_DEVICES hides all)")
    return {
        "devices": sample,
        "visible": _gpus(),
        "matches_cuda": len(sample) == _gpus(),
    }


def _lora(tmp: Path, nproc: int) -> dict[str, Any]:
    from selection.finetune.config import FinetuneConfig
    from selection.finetune.train import create_finetune_run, read_training_summary
    from selection.jobs import run_job
    from store.catalog import Catalog
    from store.workspace import Workspace
    from tests.helpers.tiny_vlm import build_tiny_vlm

    model = build_tiny_vlm("qwen2_vl", tmp / "tiny-qwen2-vl")
    paths = _images(tmp / f"lora{nproc}", 8, size=64)
    manifest = tmp / f"lora{nproc}" / "train.swift.jsonl"
    manifest.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"s{i}",
                    "messages": [
                        {"role": "user", "content": "<image>Is it noisy?"},
                        {"role": "assistant", "content": "yes"},
                    ],
                    "images": [p],
                }
            )
            + "\n"
            for i, p in enumerate(paths)
        )
    )
    ws = Workspace(tmp / f"ws{nproc}").ensure()
    cfg = FinetuneConfig(
        manifest=str(manifest), model=str(model), nproc=nproc, device="auto", max_steps=4,
        save_steps=2, grad_accum=1, batch_size=2, report_to=["none"],
    )  # fmt: skip
    run_dir = create_finetune_run(Catalog.open(ws), cfg, seed=0)
    _, seconds = _timed(lambda: run_job(run_dir, handle_signals=False), False)
    s = read_training_summary(run_dir) or {}
    keys = ("world_size", "steps", "precision", "device", "final_loss", "samples_per_s")
    return {**{k: s.get(k) for k in keys}, "job_s": seconds}


def lora_step(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    _need_gpu()
    return _lora(tmp, 1)


def ddp_lora_step(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    _need_gpu(2)
    return _lora(tmp, 2)


PARTS = {
    "clip_encode": clip_encode,
    "kmeans": kmeans,
    "vllm_zero_shot": vllm_zero_shot,
    "nvml": nvml,
    "lora_step": lora_step,
    "ddp_lora_step": ddp_lora_step,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="bench/out/gpu_smoke.json")
    p.add_argument("--clip", default="ViT-B-32")
    p.add_argument("--clip-pretrained", default="openai")
    p.add_argument("--clip-n", type=int, default=4096)
    p.add_argument("--kmeans-n", type=int, default=200_000)
    p.add_argument("--vlm", default=None, help="a cached VLM name or a local folder")
    p.add_argument("--vlm-n", type=int, default=128)
    p.add_argument("--only", default=None, help="comma-separated parts to run")
    args = p.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(PARTS)
    result: dict[str, Any] = {"env": env(args), "parts": {}}
    failed = False
    with tempfile.TemporaryDirectory(prefix="thresher-gpu-smoke-") as tmp:
        for name in chosen:
            t0 = time.perf_counter()
            try:
                out = {"status": "ok", **PARTS[name](args, Path(tmp))}
            except Skip as skip:
                out = {"status": "skipped", "reason": str(skip)}
            except Exception as exc:
                failed = True
                out = {
                    "status": "error",
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(limit=8),
                }
            out["wall_s"] = round(time.perf_counter() - t0, 3)
            result["parts"][name] = out
            print(f"{name:16s} {out['status']:8s} {out.get('reason') or out.get('error') or ''}")
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"figures in {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
