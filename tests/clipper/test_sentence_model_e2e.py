"""The issue's scenario end to end: a chat server whose model answers in full sentences, right on
about half of the samples; `thresher run clipper` with the default judge must split P / W as the
truth does (it put 3 of 90 in P, and agreed with the truth on 47 of 90, before answer extraction).
"""

from __future__ import annotations

import hashlib
import json

from selection.clipper.config import DEFAULT_PROMPT, ClipperConfig, render_prompt
from selection.jobs import create_run, run_job
from tests.helpers.chat_server import ChatServer
from tests.helpers.datasets import make_demo_dataset

WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
]
OTHER = {"red": "blue", "blue": "green", "green": "red", "circle": "square", "square": "circle"}


def _right(question: str) -> bool:
    return hashlib.sha256(question.encode()).digest()[0] % 2 == 0


def _intended(question: str, truth: str) -> str:
    """What the model means to answer: the truth for about half of the questions, else a miss."""
    if _right(question):
        return truth
    if truth in ("Yes", "No"):
        return "No" if truth == "Yes" else "Yes"
    if truth.isdigit():
        return str(int(truth) + 1)
    if len(truth) == 1 and truth in "ABCD":
        return "ABCD"[("ABCD".index(truth) + 1) % 4]
    return OTHER.get(truth, truth + "x")


def _sentence(question: str, value: str) -> str:
    """The value said the way Qwen2.5-VL / LLaVA say it when nobody asks for a format."""
    if value in ("Yes", "No"):
        return (
            "Yes, there is one in the image."
            if value == "Yes"
            else "No, there isn't one in the image."
        )
    if value.isdigit() and question.lower().startswith("how many"):
        n = int(value)
        return f"There are {WORDS[n] if n < len(WORDS) else n} of them in the image."
    if len(value) == 1 and value in "ABCD":
        option = next(
            (line[3:] for line in question.splitlines() if line.startswith(f"{value}. ")), ""
        )
        return f"Looking at the image, the answer is {value}. {option}".strip()
    return f"Looking at the image, the answer is {value}."


def test_sentence_replies_split_like_the_truth(catalog):
    make_demo_dataset(catalog, n=90, seed=4, name="demo")
    with catalog.connect() as con:
        rows = con.execute("SELECT sample_id, question, answer FROM samples").fetchall()
    intended = {q: _intended(q, a) for _, q, a in rows}  # a repeated question: the first truth
    replies = {render_prompt(DEFAULT_PROMPT, q): _sentence(q, v) for q, v in intended.items()}
    truth_p = {sid for sid, q, a in rows if intended[q].lower() == a.lower()}
    assert 30 < len(truth_p) < 60
    with ChatServer(replies) as srv:
        cfg = ClipperConfig(
            model="served", engine="openai", base_url=srv.base_url, m=3, perplexity=False
        )
        run_dir = create_run(catalog, "clipper", "demo", cfg, seed=0, run_id="sentences")
        assert run_job(run_dir) == "done"
    import pyarrow.parquet as pq

    res = pq.read_table(run_dir / "result").to_pydict()
    got_p = {s for s, k in zip(res["sample_id"], res["knowledge"], strict=True) if k == "P"}
    assert got_p == truth_p  # every sample on the right side: 90 of 90
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["undecided"]["zeroshot"] == 0
    assert summary["params"]["judge"] == "auto"
