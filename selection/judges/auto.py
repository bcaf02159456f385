"""`--judge auto`: the rule judge decides what it can; its undecided verdicts go to the LLM judge.

Without an LLM judge configured, undecided verdicts stay undecided (`correct=None`): CLIPPER
counts them as wrong (not matched) and reports them apart in summary.json, so a user sees how
much of the split the rules could not tell.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from selection.judges.base import JudgeItem, Verdict
from selection.judges.rules import RuleJudge


class AutoJudge:
    """Rules first; only the replies the rules cannot tell cost an LLM call."""

    name = "auto"

    def __init__(self, llm: Any | None = None, **rule_opts: Any) -> None:
        self.rules = RuleJudge(**rule_opts)
        self.llm = llm
        self._counts: Counter[str] = Counter()

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        out = self.rules.judge(items)
        undecided = [i for i, v in enumerate(out) if v.correct is None]
        if undecided and self.llm is not None:
            asked = self.llm.judge([items[i] for i in undecided])
            for i, v in zip(undecided, asked, strict=True):
                why = f"rule {out[i].rule} undecided ({out[i].detail}); {v.detail}"
                out[i] = replace(v, detail=why[:200])
        for v in out:
            self._counts["undecided" if v.correct is None else v.rule] += 1
        return out

    def stats(self) -> dict:
        out: dict[str, Any] = {"items": sum(self._counts.values()), "by_rule": dict(self._counts)}
        if self.llm is not None:
            out["llm"] = self.llm.stats()
        return out
