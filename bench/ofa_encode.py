"""Benchmark: the OFA encode pipeline (threaded decode + open_clip forward) against a bare loop of
the same forward on pre-decoded tensors; images/s of each and their ratio (target >= 0.9).

    .venv/bin/python bench/ofa_encode.py [--n 64] [--rounds 3] [--encoder ViT-B-32] [--batch-size 32]

Images are 640x480 JPEGs (COCO-sized) drawn from the demo generator; random weights (the
forward costs the same as with pretrained ones, and nothing is downloaded).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

THREADS = 1  # torch threads: the second core is what the decode threads get


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--encoder", default="ViT-B-32")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import torch
    from PIL import Image

    from selection.ofa.config import EncodeConfig
    from selection.ofa.encode import clean_question, decode_image, encode_rows, load_encoder
    from store.demo import build_demo

    torch.set_num_threads(THREADS)
    tmp = Path(tempfile.mkdtemp(prefix="ofa-enc-"))
    demo = json.loads(build_demo(tmp / "demo", n=args.n, seed=0).read_text())
    paths, questions = [], []
    for i, s in enumerate(demo):
        src = tmp / "demo" / (s.get("image") or demo[0]["image"])
        dst = tmp / f"{i:05d}.jpg"
        Image.open(src).convert("RGB").resize((640, 480)).save(dst, quality=90)
        paths.append([str(dst)])
        questions.append(s["conversations"][0]["value"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enc = load_encoder(EncodeConfig(encoder=args.encoder, pretrained="none", device="cpu"))
    flags = [[] for _ in paths]
    encode_rows(enc, paths[:8], questions[:8], flags[:8], batch_size=8, workers=1)  # warm-up

    pix = [decode_image(p[0], enc.preprocess, enc.image_size) for p in paths]
    tok = enc.tokenizer([clean_question(q) for q in questions])

    def pipeline() -> float:
        t = time.perf_counter()
        encode_rows(enc, paths, questions, flags, batch_size=args.batch_size, workers=args.workers)
        return len(paths) / (time.perf_counter() - t)

    def bare() -> float:
        t = time.perf_counter()
        with torch.inference_mode():
            for s in range(0, len(pix), args.batch_size):
                fi = enc.model.encode_image(torch.stack(pix[s : s + args.batch_size]))
                ft = enc.model.encode_text(tok[s : s + args.batch_size])
                torch.cat([torch.nn.functional.normalize(fi, dim=-1),
                           torch.nn.functional.normalize(ft, dim=-1)], 1).numpy()  # fmt: skip
        return len(pix) / (time.perf_counter() - t)

    # Interleaved rounds: the box is shared, so load drifts; each round's ratio compares
    # neighbours in time, and the median round is reported.
    rounds = [(pipeline(), bare()) for _ in range(args.rounds)]
    ratios = sorted(p / b for p, b in rounds)
    pipe = statistics.median(p for p, _ in rounds)
    bare_rate = statistics.median(b for _, b in rounds)
    print(json.dumps({
        "encoder": args.encoder, "n": len(paths), "batch_size": args.batch_size,
        "torch_threads": THREADS, "decode_workers": args.workers,
        "rounds": args.rounds, "pipeline_img_s": round(pipe, 2), "bare_forward_img_s": round(bare_rate, 2),
        "ratio_median": round(statistics.median(ratios), 3), "ratios": [round(r, 3) for r in ratios],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
