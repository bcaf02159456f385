"""Benchmark: the rule judge's verdicts per second on LLaVA-665K-sized synthetic chat-VLM replies.

    .venv/bin/python bench/judge.py [--n 665000] [--repeats 3] [--seed 0]

Replies are sentence-shaped like a chat VLM's (lead-ins, restated questions, negations, hedges,
option letters in sentences, number words) over yes/no, multiple-choice, counting, colour/shape
and free-text questions, with random filler words so that almost no two questions or replies are
the same (the judge's caches must not make the figure look better than a real run, where every
sample has its own question).
Reports wall and CPU seconds of `RuleJudge.judge` over all items (one thread) and the verdict mix.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _words(text: str) -> list[str]:
    return text.split()


COLOURS = _words("red green blue yellow purple orange black white brown pink gray")
SHAPES = _words("circle square rectangle triangle star hexagon oval diamond")
THINGS = _words("umbrella bicycle dog cat bus kite laptop pizza giraffe clock bench boat")
FILLER = _words(
    "near the edge of a wooden table under bright light beside small plant in background "
    "while sunlight falls across old brick wall and soft shadows cover floor by window "
    "with curtains behind them on sunny afternoon during busy street scene outside cafe"
)
LEADS = ["", "Looking at the image, ", "In the image, ", "Based on the picture, ", ""]


def _filler(rng: random.Random) -> str:
    return " ".join(rng.sample(FILLER, rng.randint(3, 8)))


def make_items(n: int, seed: int) -> list:
    from selection.judges import JudgeItem

    rng = random.Random(seed)
    items = []
    for i in range(n):
        kind = i % 5
        lead = rng.choice(LEADS)
        if kind == 0:  # yes / no
            c = rng.choice(COLOURS)
            q = f"Is there a {c} {rng.choice(SHAPES)} {_filler(rng)}?"
            truth = rng.choice(["Yes", "No"])
            reply = rng.choice(
                [
                    f"Yes, there is a {c} one {_filler(rng)}.",
                    f"No, there is no {c} shape {_filler(rng)}.",
                    f"{lead}I can't see any {c} shape {_filler(rng)}.",
                    f"It is hard to tell {_filler(rng)}.",
                ]
            )
        elif kind == 1:  # multiple choice
            opts = rng.sample(COLOURS, 4)
            q = f"What colour is the {rng.choice(SHAPES)} {_filler(rng)}?\n" + "\n".join(
                f"{L}. {o}" for L, o in zip("ABCD", opts, strict=True)
            )
            truth = rng.choice("ABCD")
            pick = rng.choice("ABCD")
            reply = rng.choice(
                [
                    pick,
                    f"The answer is {pick}. {opts['ABCD'.index(pick)]}",
                    f"{lead}the object is {opts['ABCD'.index(pick)]} {_filler(rng)}.",
                    f"It could be {opts[0]} or {opts[1]}.",
                ]
            )
        elif kind == 2:  # counting
            k = rng.randint(0, 12)
            q = f"How many {rng.choice(THINGS)}s are there {_filler(rng)}?"
            truth = str(rng.choice([k, k + 1]))
            word = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                    "nine", "ten", "eleven", "twelve"][k]  # fmt: skip
            reply = rng.choice(
                [
                    f"There are {word} of them {_filler(rng)}.",
                    f"{k}",
                    f"I count {k} {_filler(rng)}.",
                ]
            )
        elif kind == 3:  # colour / shape word
            truth = rng.choice(SHAPES)
            q = f"What shape is the large object {_filler(rng)}?"
            reply = rng.choice(
                [
                    f"{lead}the answer is {rng.choice(SHAPES)}.",
                    f"The large object is a {rng.choice(SHAPES)} {_filler(rng)}.",
                    f"It is not a {truth}, it is a {rng.choice(SHAPES)}.",
                ]
            )
        else:  # free text
            truth = rng.choice(THINGS)
            q = f"What is the person {_filler(rng)} holding?"
            reply = f"{lead}the person is holding a {rng.choice(THINGS)} {_filler(rng)}."
        items.append(JudgeItem(q, (truth,), reply))
    return items


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=665_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from selection.judges import load_judge

    t = time.perf_counter()
    items = make_items(args.n, args.seed)
    print(f"built {len(items):,} items in {time.perf_counter() - t:.1f}s; "
          f"{len({i.response for i in items}):,} distinct replies, "
          f"{len({i.question for i in items}):,} distinct questions")  # fmt: skip
    walls, cpus = [], []
    for _ in range(args.repeats):
        judge = load_judge("rule")
        from selection.judges.extract import normalize

        normalize.cache_clear()  # every repeat starts cold, as a new run does
        w, c = time.perf_counter(), time.process_time()
        verdicts = judge.judge(items)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    mix = Counter((v.rule, "undecided" if v.correct is None else str(v.correct)) for v in verdicts)
    print(f"wall s {wall:.2f} (runs {', '.join(f'{x:.2f}' for x in walls)}), CPU s {cpu:.2f}")
    print(f"verdicts/s: {len(items) / wall:,.0f} wall, {len(items) / cpu:,.0f} CPU")
    print("mix:", ", ".join(f"{r}/{o}: {k:,}" for (r, o), k in sorted(mix.items())))


if __name__ == "__main__":
    main()
