"""CLIPPER through the `openai` engine against a real chat-completions server on 127.0.0.1.

The server records every request, so the one-shot prompt layout is checked on the wire, and its
`prompt_logprobs` give each whitespace word log p = -0.5 * len(word), so perplexities are known.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from selection.clipper.config import DEFAULT_PROMPT, ClipperConfig, render_prompt
from selection.jobs import create_run, run_job
from tests.helpers.chat_server import ChatServer, last_user_text
from tests.helpers.datasets import make_demo_dataset


def _text(msg: dict) -> str:
    c = msg["content"]
    return c if isinstance(c, str) else " ".join(p["text"] for p in c if p.get("type") == "text")


def _n_images(msg: dict) -> int:
    c = msg["content"]
    return 0 if isinstance(c, str) else sum(p.get("type") != "text" for p in c)


def test_probe_prompts_on_the_wire_and_known_perplexities(catalog):
    make_demo_dataset(catalog, n=30, seed=6, name="demo")
    with catalog.connect() as con:
        rows = con.execute(
            "SELECT sample_id, question, answer, len(images) FROM samples ORDER BY sample_id"
        ).fetchall()
    # The "model" knows the answers of every other sample (with a question asked only once):
    # those land in P for sure.
    questions = [q for _, q, _, _ in rows]
    known = {q: a for i, (_, q, a, _) in enumerate(rows) if i % 2 == 0 and questions.count(q) == 1}
    assert len(known) >= 5
    # The server sees the question inside the default short-answer prompt (recorded in run.json).
    asked = {render_prompt(DEFAULT_PROMPT, q): a for q, a in known.items()}
    assert all(p.endswith("single word or phrase.") for p in asked)
    with ChatServer(asked) as srv:
        cfg = ClipperConfig(
            model="served", engine="openai", base_url=srv.base_url, m=4, shard_size=8
        )
        run_dir = create_run(catalog, "clipper", "demo", cfg, seed=0, run_id="http")
        assert run_job(run_dir) == "done"
        bodies = list(srv.requests)
    res = pq.read_table(run_dir / "result")
    probe = pq.read_table(run_dir / "probe")
    by_id = {sid: (q, a, n) for sid, q, a, n in rows}
    kn = dict(zip(res["sample_id"].to_pylist(), res["knowledge"].to_pylist(), strict=True))
    assert all(kn[sid] == "P" for sid, q, _, _ in rows if q in known)
    assert len(probe) == 4 * list(kn.values()).count("P")
    # every probe was sent as [user: demo image(s) + question, assistant: demo answer, user: query]
    sent = set()
    for body in bodies:
        msgs = body["messages"]
        if len(msgs) == 3 and body.get("prompt_logprobs") is None:
            assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
            sent.add(
                (
                    _text(msgs[0]),
                    _n_images(msgs[0]),
                    _text(msgs[1]),
                    _text(msgs[2]),
                    _n_images(msgs[2]),
                )
            )
    expected = set()
    for d, q in zip(probe["demo_id"].to_pylist(), probe["query_id"].to_pylist(), strict=True):
        dq, da, dn = by_id[d]
        qq, _, qn = by_id[q]
        expected.add(
            (render_prompt(DEFAULT_PROMPT, dq), dn, da, render_prompt(DEFAULT_PROMPT, qq), qn)
        )
    assert sent == expected
    # the server's answer depends on the query alone, so no demonstration fixes anything here
    assert set(res["subset_t1"].to_pylist()) <= {"P_not", "W_u", "unprobed"}
    # perplexity: mean over answer words of 0.5 * len(word)
    for sid, lp in zip(res["sample_id"].to_pylist(), res["log_ppl"].to_pylist(), strict=True):
        words = by_id[sid][1].split()
        assert lp == pytest.approx(0.5 * sum(map(len, words)) / len(words))


class NullServer(ChatServer):
    """A server whose model returns `content: null` for every question in `silent`."""

    def __init__(self, silent: set[str], **kw) -> None:
        super().__init__(**kw)
        self.silent = silent

    def _completion(self, body: dict) -> dict:
        out = super()._completion(body)
        if any(q in last_user_text(body.get("messages", [])) for q in self.silent):
            out["choices"][0]["message"]["content"] = None
        return out


@pytest.mark.parametrize("share", [0.2, 1.0])
def test_null_replies_are_counted_and_fail_the_stage_above_the_threshold(catalog, share, capsys):
    from store import runs
    from store.errors import ThresherError

    make_demo_dataset(catalog, n=24, seed=2, name="demo")
    with catalog.connect() as con:
        questions = [r[0] for r in con.execute("SELECT question FROM samples").fetchall()]
    silent = set(questions[: int(len(questions) * share)])
    with NullServer(silent) as srv:
        cfg = ClipperConfig(
            model="served", engine="openai", base_url=srv.base_url, m=2, perplexity=False
        )
        run_dir = create_run(catalog, "clipper", "demo", cfg, seed=0, run_id=f"null{share}")
        if share == 1.0:
            with pytest.raises(ThresherError, match="24 of 24 replies were empty"):
                run_job(run_dir)
            status = runs.read_status(run_dir)
            assert status["status"] == "failed" and "max-empty-fraction" in status["error"]
            return
        assert run_job(run_dir) == "done"
    n_empty = sum(q in silent for q in questions)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["empty_replies"]["zeroshot"] == n_empty > 0
    assert summary["verdicts"]["zeroshot"]["empty"]["wrong"] == n_empty
    events = [json.loads(line) for line in (run_dir / "progress.jsonl").read_text().splitlines()]
    assert any(e["event"] == "empty_replies" and e["stage"] == "zeroshot" for e in events)
    # `thresher runs` says what decided the verdicts, so a guessing judge shows
    from tests.helpers.cli import thresher

    capsys.readouterr()
    assert thresher(catalog.workspace, "runs", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["verdicts"]["zeroshot"] == summary["verdicts"]["zeroshot"]
    assert thresher(catalog.workspace, "runs") == 0
    table = capsys.readouterr().out
    assert "judged" in table and f"empty {n_empty}" in table
