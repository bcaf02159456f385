"""Fine-tune overheads, measured side by side: (1) the assistant-only label mask vs a bare processor
call, (2) the fine-tune job (transformers' Trainer, checkpoints every --save-steps) vs a hand-written
loop of the same optimizer steps. Prints medians of alternating repeats, wall and CPU seconds.

    .venv/bin/python bench/finetune.py                       # tiny random Qwen2-VL, 48 samples
    .venv/bin/python bench/finetune.py --model thresher-workspace/models/demo-smolvlm --n 16
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def _manifest(folder: Path, n: int) -> Path:
    from tests.helpers.tiny_vlm import make_images

    imgs = make_images(folder, 6, size=64)
    recs = [
        {
            "id": f"s{i}",
            "messages": [
                {"role": "user", "content": f"<image>Is shape {i} red? Answer yes or no."},
                {"role": "assistant", "content": "yes" if i % 2 else "no"},
            ]
            + (
                [
                    {"role": "user", "content": "How many circles?"},
                    {"role": "assistant", "content": str(i % 5)},
                ]
                if i % 3 == 0
                else []
            ),
            "images": [imgs[i % 6]],
        }
        for i in range(n)
    ]
    path = folder / "bench.swift.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="default: tiny random qwen2_vl built offline")
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--save-steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from transformers import AutoProcessor

    from selection.finetune.config import FinetuneConfig
    from selection.finetune.data import Collator
    from selection.finetune.train import create_finetune_run
    from selection.jobs import run_job
    from store.catalog import Catalog
    from store.export.read import read_manifest
    from store.workspace import Workspace
    from tests.helpers.tiny_vlm import build_tiny_vlm

    tmp = Path(tempfile.mkdtemp(prefix="bench-ft-"))
    model = args.model or str(build_tiny_vlm("qwen2_vl", tmp / "tiny"))
    man = _manifest(tmp / "data", args.n)
    examples = read_manifest(man).examples
    proc = AutoProcessor.from_pretrained(model)
    col = Collator(proc, 4096)

    def bare_processor():
        from selection.finetune.data import _load_image, _render, chat_messages

        for ex in examples:
            text = _render(proc, chat_messages(ex))
            proc(
                text=[text], images=[[_load_image(p, None) for p in ex.images]], return_tensors="pt"
            )

    def masked():
        for ex in examples:
            col([ex])

    rows = {"processor only": [], "collator + assistant mask": []}
    for _ in range(args.repeats):
        rows["processor only"].append(_timed(bare_processor))
        rows["collator + assistant mask"].append(_timed(masked))

    cfg = dict(manifest=str(man), model=model, batch_size=1, grad_accum=4, epochs=1,
               save_steps=args.save_steps, learning_rate=1e-4, warmup_ratio=0.0)  # fmt: skip
    steps = FinetuneConfig(**cfg).validate()

    def bare_loop():
        """The same optimizer steps by hand: load + LoRA, AdamW, no Trainer, no checkpoints."""
        from selection.finetune.hf import load_model

        c = FinetuneConfig(**cfg)
        model, proc2, _ = load_model(c, 0, logging.getLogger("bench"))
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        collate = Collator(proc2, 4096)
        for s in range(0, len(examples), c.grad_accum):
            for ex in examples[s : s + c.grad_accum]:
                batch, _ = collate([ex])
                model(**batch).loss.backward()
            opt.step()
            opt.zero_grad()

    k = [0]

    def job():
        k[0] += 1
        ws = Workspace(tmp / f"ws{k[0]}").ensure()
        run = create_finetune_run(Catalog.open(ws), FinetuneConfig(**cfg), seed=0)
        assert run_job(run, handle_signals=False) == "done"

    rows["train: bare loop (load + steps)"] = []
    rows["train: job (Trainer + checkpoints)"] = []
    for _ in range(args.repeats):
        rows["train: bare loop (load + steps)"].append(_timed(bare_loop))
        rows["train: job (Trainer + checkpoints)"].append(_timed(job))

    n_steps = -(-args.n // steps.grad_accum)
    print(f"model {Path(model).name}, {args.n} samples, {n_steps} steps of 4, checkpoint every "
          f"{args.save_steps}, {args.threads} thread(s), {args.repeats} repeats (median)")  # fmt: skip
    print("| what | wall s | CPU s |\n|---|---:|---:|")
    for name, vals in rows.items():
        w = statistics.median(v[0] for v in vals)
        c = statistics.median(v[1] for v in vals)
        print(f"| {name} | {w:.3f} | {c:.3f} |")


if __name__ == "__main__":
    main()
