"""Benchmark: CLIPPER's stages on the job runner vs. a bare loop of the same engine calls.

    .venv/bin/python bench/clipper_stage.py [--n 200] [--m 4] [--repeats 3] [--arch qwen2_vl]

Both sides use one already-loaded engine (a tiny random VLM on CPU, one thread) and the same
requests in the same batches: zero-shot generation for every sample, the one-shot probes the
probe stage logged, and teacher-forced answer log-probs. The stage side adds what a real run
pays for: image checks, judging, Parquet shards, progress events, resumability. Sides alternate
per repeat; the medians are compared. Work goes to bench/out/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "bench" / "out" / "clipper"


class StageClock:
    """An on_event hook: wall and CPU seconds of each stage, from its stage_start to stage_done.

    CPU time (one torch thread) is what other processes on a shared box cannot inflate.
    """

    def __init__(self) -> None:
        self.start: dict[str, tuple[float, float]] = {}
        self.times: dict[str, tuple[float, float]] = {}

    def __call__(self, event: dict) -> None:
        now = (time.perf_counter(), time.process_time())
        if event["event"] == "stage_start":
            self.start[event["stage"]] = now
        elif event["event"] == "stage_done":
            w, c = self.start[event["stage"]]
            self.times[event["stage"]] = (now[0] - w, now[1] - c)


def _model_consistent(catalog, engine, data: Path, max_new_tokens: int) -> Path:
    """The demo with every other sample's first answer replaced by the model's own zero-shot reply.

    A tiny random VLM answers nothing right, so P would be empty and stage 2 would do no work;
    with this copy about half the samples land in P and the probe stage runs |P| * m probes.
    """
    from selection.engines.base import Turn

    with catalog.connect() as con:
        rows = con.execute(
            "SELECT orig_id, question, images FROM samples JOIN datasets USING (dataset_id) "
            "WHERE name = 'orig' ORDER BY sample_id"
        ).fetchall()
    reqs = [(Turn("user", q, tuple(im)),) for _, q, im in rows]
    replies = []
    for s in range(0, len(reqs), 8):
        replies += engine.generate(reqs[s : s + 8], max_new_tokens=max_new_tokens)
    by_id = {oid: r for (oid, _, _), r in zip(rows, replies, strict=True)}
    records = json.loads(data.read_text())
    for i, rec in enumerate(records):
        if i % 2 == 0 and by_id[rec["id"]].strip():
            rec["conversations"][1]["value"] = by_id[rec["id"]]
            rec["task"] = "exact"
    out = data.with_name("demo-model-consistent.json")
    out.write_text(json.dumps(records))
    return out


def _bare(engine, inp, probe, cfg) -> dict[str, float]:
    from selection.engines.base import Turn

    rows = inp.to_pylist()
    by_id = {r["sample_id"]: r for r in rows}
    zs = [(Turn("user", r["question"], tuple(r["images"])),) for r in rows]
    pr = [
        (
            Turn("user", by_id[d]["question"], tuple(by_id[d]["images"])),
            Turn("assistant", by_id[d]["answer"]),
            Turn("user", by_id[q]["question"], tuple(by_id[q]["images"])),
        )
        for d, q in zip(probe["demo_id"].to_pylist(), probe["query_id"].to_pylist(), strict=True)
    ]
    answers = [r["answer"] for r in rows]
    b, out = cfg.batch_size, {}
    for name, reqs in (("zeroshot", zs), ("probe", pr)):
        t = (time.perf_counter(), time.process_time())
        for s in range(0, len(reqs), b):
            engine.generate(reqs[s : s + b], max_new_tokens=cfg.max_new_tokens)
        out[name] = (time.perf_counter() - t[0], time.process_time() - t[1])
    t = (time.perf_counter(), time.process_time())
    for s in range(0, len(zs), b):
        engine.answer_logprobs(zs[s : s + b], answers[s : s + b])
    out["perplexity"] = (time.perf_counter() - t[0], time.process_time() - t[1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--m", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--arch", default="qwen2_vl")
    ap.add_argument("--max-new-tokens", type=int, default=8)
    args = ap.parse_args()

    import pyarrow.parquet as pq
    import torch

    torch.set_num_threads(1)
    import selection.engines as engines
    from selection.clipper.config import ClipperConfig
    from selection.jobs import create_run, run_job
    from store.catalog import Catalog
    from store.demo import build_demo
    from store.ingest import ingest
    from store.workspace import Workspace
    from tests.helpers.tiny_vlm import build_tiny_vlm

    OUT.mkdir(parents=True, exist_ok=True)
    model = build_tiny_vlm(args.arch, OUT / f"model-{args.arch}")
    data = build_demo(OUT / f"demo-{args.n}", n=args.n, seed=0)
    shutil.rmtree(OUT / "ws", ignore_errors=True)
    ws = Workspace(OUT / "ws").ensure()
    catalog = Catalog.open(ws)
    ingest(catalog, data, name="orig", fmt="llava")
    engine = engines.load_engine("transformers", str(model), device="cpu", batch_size=8)
    data = _model_consistent(catalog, engine, data, args.max_new_tokens)
    ingest(catalog, data, name="demo", fmt="llava")
    cfg = ClipperConfig(
        model=str(model),
        m=args.m,
        max_new_tokens=args.max_new_tokens,
        batch_size=8,
        shard_size=64,
        demos_per_shard=8,
        engine_opts={"device": "cpu"},
    )
    # Both sides share this engine: the stage side must not pay for loading a second copy.
    engines.load_engine = lambda *a, **k: engine
    staged: dict[str, list[float]] = {}
    bare: dict[str, list[float]] = {}
    for rep in range(args.repeats + 1):  # repeat 0 warms caches on both sides and is dropped
        run_dir = create_run(catalog, "clipper", "demo", cfg, seed=0, run_id=f"bench-{rep}")
        order = ("stage", "bare") if rep % 2 == 0 else ("bare", "stage")
        for side in order:
            if side == "stage":
                clock = StageClock()
                assert run_job(run_dir, on_event=clock, handle_signals=False) == "done"
                times = clock.times
            else:
                ref = ws.run_dir("bench-0")
                times = _bare(
                    engine, pq.read_table(ref / "input.parquet"), pq.read_table(ref / "probe"), cfg
                )
            if rep:
                for k, v in times.items():
                    (staged if side == "stage" else bare).setdefault(k, []).append(v)
    counts = json.loads((ws.run_dir("bench-0") / "summary.json").read_text())["counts"]
    n_probes = len(pq.read_table(ws.run_dir("bench-0") / "probe"))
    print(
        f"n={args.n} m={args.m} arch={args.arch} repeats={args.repeats} "
        f"P={counts['P']} W={counts['W']} probes={n_probes}"
    )
    print(f"{'stage':<12}{'wall s':>9}{'bare':>9}{'ratio':>7}{'cpu s':>9}{'bare':>9}{'ratio':>7}")
    total = {"stage": [0.0, 0.0], "bare": [0.0, 0.0]}
    for k in ("zeroshot", "probe", "perplexity", "result"):
        row = f"{k:<12}"
        for j in (0, 1):
            s = statistics.median(t[j] for t in staged[k])
            b = statistics.median(t[j] for t in bare[k]) if k in bare else None
            total["stage"][j] += s
            total["bare"][j] += b or 0.0
            row += f"{s:>9.3f}" + (f"{b:>9.3f}{s / b:>7.3f}" if b else f"{'-':>9}{'-':>7}")
        print(row)
    ts, tb = total["stage"], total["bare"]
    print(
        f"{'total':<12}{ts[0]:>9.3f}{tb[0]:>9.3f}{ts[0] / tb[0]:>7.3f}"
        f"{ts[1]:>9.3f}{tb[1]:>9.3f}{ts[1] / tb[1]:>7.3f}"
    )


if __name__ == "__main__":
    main()
