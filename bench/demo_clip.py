"""The demo CLIP: its training cost and the purity of OFA's demo clusters beside random encoders.

    .venv/bin/python bench/demo_clip.py [--n 3000] [--vit]

Builds the demo dataset (n samples, seed 0) under bench/out/demo_clip/, trains the demo CLIP
(process CPU seconds), then scores k-means (k = 20) cluster purity against the demo's own labels
(task family, dominant colour, dominant shape) for: the trained demo CLIP, the same architecture
untrained, and with --vit a random-weight ViT-B-32 (what the demo used before; minutes of CPU).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import torch

    from selection.demo.clip import demo_purity, files, train_demo_clip
    from selection.ofa.config import EncodeConfig
    from store.demo import build_demo

    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--vit", action="store_true", help="also score a random-weight ViT-B-32")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    out = Path("bench/out/demo_clip") / f"n{a.n}"
    data = build_demo(out / "data", n=a.n, seed=0)
    encoders = {}
    for name, steps in (("demo CLIP, trained", None), ("demo CLIP, untrained", 0)):
        wall, cpu = time.perf_counter(), time.process_time()
        folder = out / ("trained" if steps is None else "untrained")
        train_demo_clip(data, folder, **({} if steps is None else {"steps": steps}))
        print(
            f"{name}: built in {time.perf_counter() - wall:.1f} s wall, "
            f"{time.process_time() - cpu:.1f} s CPU ({a.threads} threads)"
        )
        config, ckpt = files(folder)
        encoders[name] = EncodeConfig(encoder=str(config), pretrained=str(ckpt), device="cpu")
    if a.vit:
        encoders["ViT-B-32, random weights"] = EncodeConfig(
            encoder="ViT-B-32", pretrained="none", device="cpu"
        )
    print(f"\n| encoder ({a.n} samples, k = 20) | encode s | task | colour | shape |")
    print("|---|---:|---:|---:|---:|")
    for name, cfg in encoders.items():
        t = time.perf_counter()
        pur = demo_purity(data, cfg, k=20)
        dt = time.perf_counter() - t
        print(
            f"| {name} | {dt:.1f} | {pur['task']:.3f} | {pur['colour']:.3f} | {pur['shape']:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
