"""LLM-as-judge: a yes/no semantic-match question to an OpenAI-compatible endpoint, cached on disk."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selection.engines.base import Turn
from selection.judges.base import JudgeItem, Verdict
from selection.judges.rules import normalize
from store.errors import ThresherError

SYSTEM = (
    "You grade answers. Decide whether the model's response means the same as one of the "
    "reference answers for the question. Ignore case, punctuation and wording; judge meaning."
)
PROMPT = (
    "Question: {question}\n"
    "Reference answer(s): {references}\n"
    "Model response: {response}\n"
    "Does the model response match a reference answer? Reply with one word: yes or no."
)
_YES = {"yes", "true", "correct", "match", "matches", "y"}
_NO = {"no", "false", "incorrect", "wrong", "n"}


def parse_reply(reply: str) -> bool | None:
    """yes -> True, no -> False, anything else -> None (counted as unparseable)."""
    words = normalize(reply).split()
    if not words:
        return None
    if words[0] in _YES:
        return True
    if words[0] in _NO:
        return False
    return None


def cache_key(item: JudgeItem) -> str:
    raw = json.dumps([item.question, list(item.references), item.response], ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()


class LLMJudge:
    """Asks an LLM, once per distinct (question, references, response); replies kept in a JSONL."""

    name = "llm"

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "http://127.0.0.1:8000/v1",
        cache_path: str | os.PathLike | None = None,
        shortcut_exact: bool = True,
        max_new_tokens: int = 4,
        **engine_opts,
    ) -> None:
        from selection.engines.openai_engine import OpenAIEngine

        self.engine = OpenAIEngine(model, base_url=base_url, **engine_opts)
        self.cache_path = Path(cache_path) if cache_path else None
        self.shortcut_exact = shortcut_exact
        self.max_new_tokens = max_new_tokens
        self._cache: dict[str, dict] = {}
        self._stats = {"items": 0, "llm_calls": 0, "cache_hits": 0, "exact_shortcut": 0}
        self._stats |= {"unparseable": 0, "correct": 0}
        if self.cache_path and self.cache_path.exists():
            self._load()

    def _load(self) -> None:
        assert self.cache_path is not None
        with self.cache_path.open() as fh:
            for n, line in enumerate(fh, 1):
                try:
                    row = json.loads(line)
                    self._cache[row["key"]] = row
                except (json.JSONDecodeError, KeyError, TypeError):
                    if line.endswith("\n"):  # a torn last line is normal after a crash
                        raise ThresherError(
                            f"{self.cache_path}:{n}: not a judge cache line; "
                            "delete the file to re-judge"
                        ) from None

    def _remember(self, rows: list[dict]) -> None:
        for row in rows:
            self._cache[row["key"]] = row
        if self.cache_path is None or not rows:
            return
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        with self.cache_path.open("a") as fh:
            fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            fh.flush()
            os.fsync(fh.fileno())

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        out: list[Verdict | None] = [None] * len(items)
        ask: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            refs = [r for r in item.references if r.strip()]
            if self.shortcut_exact and any(normalize(item.response) == normalize(r) for r in refs):
                out[i] = Verdict(True, "exact", "normalised exact match; LLM not asked")
                self._stats["exact_shortcut"] += 1
                continue
            key = cache_key(item)
            if key in self._cache:
                self._stats["cache_hits"] += 1
                out[i] = self._verdict(self._cache[key], cached=True)
            else:
                ask.setdefault(key, []).append(i)
        if ask:
            keys = list(ask)
            requests = [self._request(items[ask[k][0]]) for k in keys]
            replies = self.engine.generate(requests, max_new_tokens=self.max_new_tokens)
            self._stats["llm_calls"] += len(keys)
            rows: list[dict[str, Any]] = [
                {"key": k, "reply": r, "correct": parse_reply(r)}
                for k, r in zip(keys, replies, strict=True)
            ]
            self._remember(rows)
            for row in rows:
                for i in ask[row["key"]]:
                    out[i] = self._verdict(row, cached=False)
        verdicts = [v for v in out if v is not None]
        self._stats["items"] += len(verdicts)
        self._stats["unparseable"] += sum(v.correct is None for v in verdicts)
        self._stats["correct"] += sum(v.correct is True for v in verdicts)
        return verdicts

    @staticmethod
    def _request(item: JudgeItem) -> tuple[Turn, ...]:
        refs = " | ".join(r for r in item.references if r.strip())
        text = PROMPT.format(question=item.question, references=refs, response=item.response)
        return (Turn("system", SYSTEM), Turn("user", text))

    @staticmethod
    def _verdict(row: dict, *, cached: bool) -> Verdict:
        reply = str(row.get("reply", ""))[:80]
        detail = f"{'cached ' if cached else ''}reply {reply!r}"
        return Verdict(row.get("correct"), "llm", detail)

    def stats(self) -> dict:
        return dict(self._stats, cache_entries=len(self._cache))
