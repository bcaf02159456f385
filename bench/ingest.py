"""Benchmark: write a LLaVA-style JSON of N samples (paths only) and time `thresher ingest` on it.

    .venv/bin/python bench/ingest.py [--n 665000] [--check-images exists]

The file goes to bench/out/ (git-ignored) and is reused when it already has N samples. Images
do not exist, so every sample gets `missing_image`: the figure measures parsing, normalising,
the image-folder listing and the catalog write, which is the floor of any real ingest. Runs the
DuckDB fast path (first ingest, then an unchanged re-ingest) and the Python reader side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from store.catalog import Catalog  # noqa: E402
from store.ingest import ingest  # noqa: E402
from store.workspace import Workspace  # noqa: E402

OUT = ROOT / "bench" / "out"
QUESTIONS = [
    "What is the colour of the {o} in the image?",
    "How many {o}s are there?",
    "Is there a {o} on the left side of the picture?",
    "Describe the {o} briefly.",
]
OBJECTS = ["cat", "bus", "tree", "cup", "sign", "dog", "car", "lamp"]


def write_llava(path: Path, n: int, seed: int = 0) -> None:
    """Write in the layout of LLaVA-Instruct-665K: one JSON list, ids, relative image paths."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        f.write("[")
        for i in range(n):
            o = rng.choice(OBJECTS)
            sample = {
                "id": f"{i:09d}",
                "image": f"coco/train2017/{i:012d}.jpg",
                "conversations": [
                    {"from": "human", "value": "<image>\n" + rng.choice(QUESTIONS).format(o=o)},
                    {"from": "gpt", "value": f"The {o} is {rng.choice(['red', 'blue', 'green'])}."},
                ],
            }
            if i % 10 == 0:  # a tenth are multi-turn, as in the real mix
                sample["conversations"] += [
                    {"from": "human", "value": "And what else is there?"},
                    {"from": "gpt", "value": "A " + rng.choice(OBJECTS) + "."},
                ]
            if i:
                f.write(",\n")
            json.dump(sample, f)
        f.write("]\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=665_000)
    ap.add_argument("--check-images", default="header")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    data = OUT / f"llava_{args.n}.json"
    if not data.exists():
        t = time.perf_counter()
        write_llava(data, args.n)
        print(
            f"wrote {data} ({data.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f}s"
        )
    ws_dir = OUT / "ws-ingest"
    shutil.rmtree(ws_dir, ignore_errors=True)
    catalog = Catalog.open(Workspace(ws_dir))
    load = os.getloadavg()[0]
    cpu: dict[str, float] = {}

    def timed(label: str, **kwargs):
        # CPU time of all threads: the fair figure on a box other jobs share.
        t = time.process_time()
        report = ingest(catalog, data, check_images=args.check_images, **kwargs)
        cpu[label] = time.process_time() - t
        return report

    fast = timed("first ingest")
    again = timed("re-ingest, unchanged")
    slow = timed("python", name="python", engine="python")
    print(
        f"{args.n} samples, check_images={args.check_images}, load average {load:.1f} "
        f"on {os.cpu_count()} cores"
    )
    for label, r in (("first ingest", fast), ("re-ingest, unchanged", again), ("python", slow)):
        print(
            f"  {label:<22} engine={r.engine:<6} wall {r.seconds:6.2f}s "
            f"{r.samples_per_s:>9,.0f}/s  cpu {cpu[label]:6.2f}s"
        )
    print(f"  fast path / python path: {slow.seconds / fast.seconds:.1f}x")


if __name__ == "__main__":
    main()
