"""LLM-as-judge against a real chat server: prompt, caching on disk, unparseable replies."""

from __future__ import annotations

import json

import pytest

from selection.judges import JudgeItem, load_judge
from selection.judges.llm import PROMPT, cache_key, parse_reply
from store.errors import ThresherError
from tests.helpers.chat_server import ChatServer


def _prompt(q, refs, resp):
    return PROMPT.format(question=q, references=" | ".join(refs), response=resp)


ITEMS = [
    JudgeItem("What animal?", ("cat",), "a small feline"),
    JudgeItem("What colour?", ("red", "crimson"), "blue"),
    JudgeItem("How many?", ("3",), "a few"),
    JudgeItem("What animal?", ("cat",), "Cat"),  # normalised exact: no LLM call
    JudgeItem("What animal?", ("cat",), "a small feline"),  # duplicate of item 0
]
SCRIPT = {
    _prompt("What animal?", ["cat"], "a small feline"): "Yes.",
    _prompt("What colour?", ["red", "crimson"], "blue"): "no",
    _prompt("How many?", ["3"], "a few"): "It depends on how you count",
}


@pytest.mark.parametrize(
    ("reply", "expected"),
    [("yes", True), ("Yes.", True), ("YES, it matches", True), ("no", False), ("No.", False),
     ("False", False), ("maybe", None), ("", None), ("The answer is yes", None)],
)  # fmt: skip
def test_parse_reply(reply, expected):
    assert parse_reply(reply) is expected


def test_judges_caches_on_disk_and_counts_unparseable(tmp_path):
    cache = tmp_path / "run" / "judge_cache.jsonl"
    with ChatServer(SCRIPT) as srv:
        judge = load_judge("llm", model="judge-m", base_url=srv.base_url, cache_path=cache)
        verdicts = judge.judge(ITEMS)
        assert [v.correct for v in verdicts] == [True, False, None, True, True]
        assert [v.rule for v in verdicts] == ["llm", "llm", "llm", "exact", "llm"]
        assert len(srv.requests) == 3  # one call per distinct (question, refs, response)
        assert judge.stats() | {"cache_entries": 3} == {
            "items": 5, "llm_calls": 3, "cache_hits": 0, "exact_shortcut": 1,
            "unparseable": 1, "correct": 3, "cache_entries": 3,
        }  # fmt: skip
        body = srv.requests[0]
        assert body["temperature"] == 0 and body["model"] == "judge-m"
        assert body["messages"][0]["role"] == "system"

        # Same judge again: everything from the in-memory cache.
        assert [v.correct for v in judge.judge(ITEMS)] == [True, False, None, True, True]
        assert len(srv.requests) == 3

        # A new judge over the same file (a resumed run): no calls at all.
        again = load_judge("llm", model="judge-m", base_url=srv.base_url, cache_path=cache)
        verdicts = again.judge(ITEMS[:3])
        assert [v.correct for v in verdicts] == [True, False, None]
        assert all("cached" in v.detail for v in verdicts)
        assert len(srv.requests) == 3
        assert again.stats()["cache_hits"] == 3 and again.stats()["unparseable"] == 1

    rows = [json.loads(line) for line in cache.read_text().splitlines()]
    assert {r["key"] for r in rows} == {cache_key(i) for i in ITEMS[:3]}


def test_cache_key_separates_question_reference_and_response():
    base = JudgeItem("q", ("a",), "r")
    keys = {
        cache_key(base),
        cache_key(JudgeItem("q2", ("a",), "r")),
        cache_key(JudgeItem("q", ("a2",), "r")),
        cache_key(JudgeItem("q", ("a",), "r2")),
    }
    assert len(keys) == 4


def test_torn_last_line_is_tolerated_but_garbage_is_named(tmp_path):
    cache = tmp_path / "c.jsonl"
    good = {"key": cache_key(ITEMS[0]), "reply": "yes", "correct": True}
    cache.write_text(json.dumps(good) + "\n" + '{"key": "abc", "rep')
    judge = load_judge("llm", model="m", base_url="http://127.0.0.1:9/v1", cache_path=cache)
    assert judge.judge([ITEMS[0]])[0].correct is True  # from the cache, no server needed
    cache.write_text("not json\n")
    with pytest.raises(ThresherError, match=r"c.jsonl:1: not a judge cache line"):
        load_judge("llm", model="m", cache_path=cache)


def test_server_faults_are_retried(tmp_path):
    with ChatServer(SCRIPT) as srv:
        srv.fail_next(429, 500)
        judge = load_judge(
            "llm", model="m", base_url=srv.base_url, cache_path=tmp_path / "c.jsonl", backoff_s=0
        )
        assert [v.correct for v in judge.judge(ITEMS[:2])] == [True, False]
