"""The one interface every judge (rule-based, LLM-as-judge) speaks: does a response match?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class JudgeItem:
    question: str
    references: tuple[str, ...]  # any match counts
    response: str
    task: str | None = None  # e.g. "mc", "yesno", "numeric", "vqa"; None = infer from shape


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~1 us more per verdict (665K of them)
class Verdict:
    correct: bool | None  # None = undecided: the rules could not tell, or an unparseable LLM reply
    rule: str  # what decided: exact, contains, vocab, short, yesno, mc, numeric, empty, llm
    detail: str = ""


@runtime_checkable
class Judge(Protocol):
    name: str

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]: ...

    def stats(self) -> dict: ...
