"""Benchmark: ingest Hub-style Parquet shards with embedded ~30 KB images vs a bare loop.

    .venv/bin/python bench/hub_ingest.py [--n 100000] [--shards 8] [--repeats 2]

Writes N samples in LLaVA-OneVision-Data's schema (`id`, `image: struct<bytes, path>`,
`conversations`), row groups of 100 rows as `datasets` writes image data, to bench/out/hub/
(reused when it already holds N rows). Every image is a real JPEG of about 30 KB, each one made
distinct by a few bytes after its end-of-image marker (decoders ignore them; sha256 does not), so
the store writes every image, the worst case for it.

Then, each in its own process so peak RSS is its own, alternating the order between repeats:
- bare: pyarrow reads each shard batch by batch and writes each image's bytes to a file;
- ingest: `thresher ingest FOLDER` (default image check, header) into a fresh workspace.
Reports wall and CPU seconds (user and system: the kernel's share of writing the files),
samples/s, the ratio ingest / bare, and peak RSS (ru_maxrss).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out" / "hub"
ROW_GROUP = 100
BASES = 64  # distinct JPEGs; each sample appends its own bytes to one of them


def _jpegs(seed: int = 0) -> list[bytes]:
    """JPEGs of about 30 KB: 288x288 noise over a gradient, quality tuned to the size."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for k in range(BASES):
        side = 288
        base = np.linspace(0, 255, side, dtype=np.float32)[None, :, None] * np.ones((side, 1, 3))
        noise = rng.normal(0, 18 + k % 8, (side, side, 3))
        img = Image.fromarray(np.clip(base + noise, 0, 255).astype("uint8"))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def write_shards(n: int, shards: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = OUT / f"n{n}"
    marker = folder / "done.json"
    if marker.exists() and json.loads(marker.read_text())["n"] == n:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    bases = _jpegs()
    rng = random.Random(0)
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("image", image),
            ("conversations", pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))),
            ("data_source", pa.string()),
        ]
    )
    per = -(-n // shards)
    for s in range(shards):
        lo, hi = s * per, min(n, (s + 1) * per)
        path = folder / f"train-{s:05d}-of-{shards:05d}.parquet"
        with pq.ParquetWriter(path, schema) as writer:
            for start in range(lo, hi, ROW_GROUP):
                rows = []
                for i in range(start, min(hi, start + ROW_GROUP)):
                    data = bases[i % BASES] + f"thresher-bench-{i}".encode()
                    rows.append(
                        {
                            "id": f"{i:08d}",
                            "image": {"bytes": data, "path": f"{i:08d}.jpg"},
                            "conversations": [
                                {"from": "human", "value": f"<image>\nWhat is in picture {i}?"},
                                {
                                    "from": "gpt",
                                    "value": rng.choice(["A cat.", "A bus.", "Noise."]),
                                },
                            ],
                            "data_source": "bench",
                        }
                    )
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))
    marker.write_text(json.dumps({"n": n, "shards": shards}))
    return folder


def bare(folder: Path, out: Path) -> int:
    """The floor: read every shard with pyarrow and write each image to its own file."""
    import pyarrow.parquet as pq

    out.mkdir(parents=True)
    n = 0
    for shard in sorted(folder.glob("*.parquet")):
        pf = pq.ParquetFile(shard, pre_buffer=False)  # as ingest reads: a row group at a time
        for batch in pf.iter_batches(batch_size=256, columns=["id", "image"]):
            ids = batch.column(0).to_pylist()
            data = batch.column(1).field("bytes").to_pylist()
            for i, b in zip(ids, data, strict=True):
                with open(out / f"{i}.jpg", "wb") as fh:
                    fh.write(b)
            n += len(ids)
    return n


def ingest_folder(folder: Path, ws: Path) -> int:
    from store.catalog import Catalog
    from store.ingest import ingest
    from store.workspace import Workspace

    report = ingest(Catalog.open(Workspace(ws)), folder)
    assert report.images_written == report.n_samples, report
    return report.n_samples


def child(kind: str, folder: Path, scratch: Path) -> None:
    t0, c0 = time.perf_counter(), time.process_time()
    n = bare(folder, scratch) if kind == "bare" else ingest_folder(folder, scratch)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss = usage.ru_maxrss / 1024  # KiB on Linux -> MiB
    out = {"kind": kind, "n": n, "wall": wall, "cpu": cpu, "rss_mib": rss}
    # CPU split: user (Python, hashing, checks) and system (the kernel writing the files).
    print(json.dumps({**out, "user": usage.ru_utime, "sys": usage.ru_stime}))


def run(kind: str, folder: Path) -> dict:
    scratch = OUT / f"scratch-{kind}"
    shutil.rmtree(scratch, ignore_errors=True)
    subprocess.run(["sync"], check=False)
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(folder), str(scratch)],
        capture_output=True,
        text=True,
        check=True,
    )
    shutil.rmtree(scratch, ignore_errors=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--child", nargs=3, metavar=("KIND", "FOLDER", "SCRATCH"))
    args = ap.parse_args()
    if args.child:
        kind, folder, scratch = args.child
        child(kind, Path(folder), Path(scratch))
        return
    t0 = time.perf_counter()
    folder = write_shards(args.n, args.shards)
    size = sum(f.stat().st_size for f in folder.glob("*.parquet"))
    print(f"{args.n:,} samples in {args.shards} shards, {size / 1e9:.2f} GB "
          f"(ready in {time.perf_counter() - t0:.0f} s); load {os.getloadavg()[0]:.1f}")  # fmt: skip
    for r in range(args.repeats):
        order = ("bare", "ingest") if r % 2 == 0 else ("ingest", "bare")
        got = {kind: run(kind, folder) for kind in order}
        b, i = got["bare"], got["ingest"]
        print(
            f"repeat {r + 1} ({' then '.join(order)}; load {os.getloadavg()[0]:.1f}): "
            f"bare {b['wall']:.1f} s = {b['n'] / b['wall']:,.0f}/s (CPU {b['cpu']:.1f} s = user "
            f"{b['user']:.1f} + sys {b['sys']:.1f}, RSS {b['rss_mib']:.0f} MiB) | ingest "
            f"{i['wall']:.1f} s = {i['n'] / i['wall']:,.0f}/s (CPU {i['cpu']:.1f} s = user "
            f"{i['user']:.1f} + sys {i['sys']:.1f}, RSS {i['rss_mib']:.0f} MiB) | "
            f"ingest/bare samples/s {b['wall'] / i['wall']:.2f}x"
        )


if __name__ == "__main__":
    main()
