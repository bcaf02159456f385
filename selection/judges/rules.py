"""Rule-based judge: normalised exact match, multiple choice, yes/no and numeric with tolerance."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

from selection.judges.base import JudgeItem, Verdict

NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100,
}  # fmt: skip
ARTICLES = {"a", "an", "the"}
# Task names (the catalog's `task` column) mapped to the rule that judges them.
TASK_RULES = {
    "yesno": "yesno",
    "mc": "mc",
    "multiple_choice": "mc",
    "count": "numeric",
    "numeric": "numeric",
    "short": "exact",
    "exact": "exact",
    "vqa": "exact",
}

_PUNCT = str.maketrans({c: " " for c in string.punctuation})
_NUM = re.compile(r"[-+]?(?:\d+(?:,\d{3})*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")
# An option line or inline option: "A. red", "(B) green", "C) blue", "D: yellow".
_OPTION = re.compile(r"(?:^|\n|\s)\(?([A-H])[\.\):]\s*([^\n]+?)(?=\s+\(?[A-H][\.\):]\s|\n|$)")
# A letter answer: "B", "(B)", "B.", "B) green", "Answer: B", "The answer is (B)".
_LETTER = re.compile(
    r"^(?:(?:the\s+)?(?:correct\s+)?(?:answer|option|choice)(?:\s+is)?\s*[:\-]?\s*)?"
    r"(\(([A-Ha-h])\)|([A-Ha-h])(?:[\.\):]|(?=\s)|$))",
    re.IGNORECASE,
)


def normalize(text: str) -> str:
    """Lowercase, drop punctuation and articles, number words -> digits, squeeze spaces."""
    text = text.lower().strip()
    # keep decimal points and thousands separators inside numbers before punctuation goes
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    text = re.sub(r"(?<=\d)\.(?=\d)", "\x00", text)
    text = text.translate(_PUNCT).replace("\x00", ".")
    words = [str(NUMBER_WORDS.get(w, w)) for w in text.split() if w not in ARTICLES]
    return " ".join(words)


def parse_number(text: str) -> float | None:
    """The single number a text states (digits or a number word), else None."""
    norm = normalize(text)
    found = _NUM.findall(norm)
    if len(found) != 1:
        return None
    try:
        return float(found[0].replace(",", ""))
    except ValueError:
        return None


def parse_options(question: str) -> dict[str, str]:
    """Options listed in a multiple-choice question, letter -> text ({} if fewer than two)."""
    opts = {m.group(1): m.group(2).strip() for m in _OPTION.finditer(question)}
    letters = sorted(opts)
    # Require a run A, B, ... so a stray "I." in prose does not count as options.
    if len(letters) < 2 or letters[0] != "A":
        return {}
    return opts


def _mc_letter(text: str, options: dict[str, str]) -> str | None:
    """The option a text names: by letter ("B", "(B)", "B.", "B) green") or by option text."""
    text = text.strip()
    m = _LETTER.match(text)
    if m:
        letter = (m.group(2) or m.group(3)).upper()
        rest = normalize(text[m.end() :])
        # "A cat" is an article, not option A: a bare letter followed by other words only
        # counts when those words are the option's own text.
        marked = m.group(2) is not None or text[m.end(1) - 1 : m.end(1)] in ".):"
        if letter in options and (not rest or marked or rest == normalize(options[letter])):
            return letter
    norm = normalize(text)
    hits = [k for k, v in options.items() if normalize(v) == norm]
    if len(hits) == 1:
        return hits[0]
    # "The answer is green." -> the only option whose text appears as whole words
    contained = [k for k, v in options.items() if f" {normalize(v)} " in f" {norm} "]
    return contained[0] if len(contained) == 1 else None


def _yesno(text: str) -> str | None:
    words = normalize(text).split()
    if not words:
        return None
    return words[0] if words[0] in ("yes", "no") else None


class RuleJudge:
    """Chooses a rule per item from its task, else from the shape of question and references."""

    name = "rule"

    def __init__(self, rel_tol: float = 1e-3, abs_tol: float = 1e-6) -> None:
        self.rel_tol = rel_tol
        self.abs_tol = abs_tol
        self._counts: Counter[str] = Counter()
        self._correct = 0

    def rule_for(self, item: JudgeItem) -> str:
        rule = TASK_RULES.get((item.task or "").lower())
        options = parse_options(item.question)
        if rule == "mc" or (rule is None and options and self._refs_are_options(item, options)):
            return "mc" if options else "exact"
        if rule:
            return rule
        refs = [r for r in item.references if r.strip()]
        if refs and all(_yesno(r) is not None and len(normalize(r).split()) == 1 for r in refs):
            return "yesno"
        if (
            refs
            and all(parse_number(r) is not None for r in refs)
            and all(_NUM.fullmatch(normalize(r)) for r in refs)
        ):
            return "numeric"
        return "exact"

    @staticmethod
    def _refs_are_options(item: JudgeItem, options: dict[str, str]) -> bool:
        return all(_mc_letter(r, options) is not None for r in item.references)

    def judge_one(self, item: JudgeItem) -> Verdict:
        rule = self.rule_for(item)
        refs = [r for r in item.references if r.strip()]
        if not refs:
            return Verdict(False, rule, "no reference answer")
        if rule == "mc":
            options = parse_options(item.question)
            got = _mc_letter(item.response, options)
            want = {w for r in refs if (w := _mc_letter(r, options)) is not None}
            return Verdict(got is not None and got in want, rule, f"got {got}, want {sorted(want)}")
        if rule == "yesno":
            said = _yesno(item.response)
            truth = {_yesno(r) for r in refs}
            return Verdict(said is not None and said in truth, rule, f"got {said}")
        if rule == "numeric":
            value = parse_number(item.response)
            wants = [parse_number(r) for r in refs]
            ok = value is not None and any(
                w is not None and math.isclose(value, w, rel_tol=self.rel_tol, abs_tol=self.abs_tol)
                for w in wants
            )
            return Verdict(ok, rule, f"got {value}")
        got = normalize(item.response)
        ok = any(got == normalize(r) for r in refs)
        return Verdict(ok, "exact", "" if ok else f"got {got!r}")

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        out = [self.judge_one(it) for it in items]
        for v in out:
            self._counts[v.rule] += 1
            self._correct += bool(v.correct)
        return out

    def stats(self) -> dict:
        return {
            "items": sum(self._counts.values()),
            "correct": self._correct,
            "by_rule": dict(self._counts),
        }
