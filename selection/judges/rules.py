"""Rule-based judge: extracts the answer from a (sentence) reply, then compares; undecided when unclear.

Each verdict names the rule that decided it (`Verdict.rule`):
  empty     the reply is empty (a `content: null` reply): wrong
  exact     the normalised reply (or its "the answer is X") equals a reference
  contains  a reference occurs as whole words, not negated ("Looking at the image, it is a circle.")
  vocab     the reply names a different colour / shape / position / size than the reference
  short     a short reply (or a stated answer) that is not the reference: wrong
  yesno     yes/no polarity, with negation ("No, there is no circle")
  mc        an option letter or the option's text ("The answer is B. red")
  numeric   the number a reply gives (digits or words; "There are three circles")
A verdict with `correct=None` is *undecided*: the rule could not tell (hedged, several answers,
a long reply that never states one). `--judge auto` hands those to the LLM judge.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

from selection.judges.base import JudgeItem, Verdict
from selection.judges.extract import (
    NUM_RE,
    counted_number,
    has_negation,
    is_hedged,
    negated_at,
    normalize,
    numbers_in,
    phrase_positions,
    stated_answer,
    strip_lead_in,
    vocabulary_mentions,
    vocabulary_of,
)

__all__ = ["RuleJudge", "normalize", "parse_number", "parse_options", "TASK_RULES"]

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
_YES = frozenset({"yes", "yeah", "yep", "yup", "correct", "true", "affirmative"})
_NO = frozenset({"no", "nope", "nah", "false", "incorrect"})

# An option line or inline option: "A. red", "(B) green", "C) blue", "D: yellow".
_OPTION = re.compile(r"(?:^|\n|\s)\(?([A-H])[\.\):]\s*([^\n]+?)(?=\s+\(?[A-H][\.\):]\s|\n|$)")
_OPTION_LINE = re.compile(r"^[ \t]*\(?([A-H])[\.\):][ \t]*(\S[^\n]*)$", re.MULTILINE)
_INLINE_MARK = re.compile(r"\s\(?[A-H][\.\):]\s")
_HAS_A = re.compile(r"(?:^|\s)\(?A[\.\):]")
# A letter answer: "B", "(B)", "B.", "B) green", "Answer: B", "The answer is (B)".
_LETTER = re.compile(
    r"^(?:(?:the\s+)?(?:correct\s+)?(?:answer|option|choice)(?:\s+is)?\s*[:\-]?\s*)?"
    r"(\(([A-Ha-h])\)|([A-Ha-h])(?:[\.\):,]|(?=\s)|$))",
    re.IGNORECASE,
)
# A letter named inside a sentence: "(B)", "option B", "answer is C", "B) green", "I choose D".
_LETTER_IN = re.compile(
    r"\(([A-H])\)|\b(?:[Oo]ption|[Cc]hoice|[Aa]nswer(?: is)?|[Cc]hoose|[Ss]elect|is)\s+\(?([A-H])\b(?![\-'])"
    r"|\b([A-H])\)\s|^([A-H])[\.\):,]"
)


def parse_number(text: str) -> float | None:
    """The single number a text states (digits or a number word), else None."""
    found = NUM_RE.findall(normalize(text))
    if len(found) != 1:
        return None
    try:
        return float(found[0])
    except ValueError:
        return None


def parse_options(question: str) -> dict[str, str]:
    """Options listed in a multiple-choice question, letter -> text ({} if fewer than two)."""
    # Most questions list no options: a cheap search spares them the parse and the cache.
    return _parse_options(question) if _HAS_A.search(question) else {}


@lru_cache(maxsize=4096)
def _parse_options(question: str) -> dict[str, str]:
    # One option per line (LLaVA / ScienceQA style) is read line by line, which is several
    # times cheaper than the general pattern; inline lists ("(A) x (B) y") take the general one.
    opts = {m.group(1): m.group(2).strip() for m in _OPTION_LINE.finditer(question)}
    if len(opts) < 2 or any(_INLINE_MARK.search(v) for v in opts.values()):
        opts = {m.group(1): m.group(2).strip() for m in _OPTION.finditer(question)}
    letters = sorted(opts)
    # Require a run A, B, ... so a stray "I." in prose does not count as options.
    if len(letters) < 2 or letters[0] != "A":
        return {}
    return opts


def _mc_letter(text: str, options: dict[str, str]) -> str | None:
    """The option a short text names: by letter ("B", "(B)", "B.", "B) green") or by option text."""
    text = text.strip()
    m = _LETTER.match(text)
    if m:
        letter = (m.group(2) or m.group(3)).upper()
        rest = normalize(text[m.end() :])
        # "A cat" is an article, not option A: a bare letter followed by other words only
        # counts when those words are the option's own text.
        marked = m.group(2) is not None or text[m.end(1) - 1 : m.end(1)] in ".):,"
        if letter in options and (not rest or marked or rest == normalize(options[letter])):
            return letter
    norm = normalize(text)
    hits = [k for k, v in options.items() if normalize(v) == norm]
    return hits[0] if len(hits) == 1 else None


def _mc_choice(reply: str, options: dict[str, str]) -> tuple[str | None, str]:
    """(letter, how) for a reply to a multiple-choice question; letter None = no single choice.
    `how` is "none" when the reply clearly picks nothing listed, else "unclear"."""
    text = strip_lead_in(reply).strip()
    got = _mc_letter(text, options)
    if got:
        return got, "letter"
    stated = stated_answer(text)
    if stated and (got := _mc_letter(stated, options)):
        return got, "stated"
    letters = {x for m in _LETTER_IN.finditer(text) for x in m.groups() if x and x in options}
    if len(letters) == 1:
        return letters.pop(), "letter in reply"
    if len(letters) > 1:
        return None, "unclear"
    words = normalize(text).split()
    named = set()
    for k, v in options.items():
        phrase = normalize(v).split()
        if any(not negated_at(words, i) for i in phrase_positions(words, phrase)):
            named.add(k)
    # "dark blue" also contains "blue": keep only options not inside another named option.
    named = {
        k
        for k in named
        if not any(
            j != k and f" {normalize(options[k])} " in f" {normalize(options[j])} " for j in named
        )
    }
    if len(named) == 1 and not is_hedged(" ".join(words)):
        return named.pop(), "option text"
    if not named and (stated or len(words) <= 3):
        return None, "none"
    return None, "unclear"


def _polarity(reply: str) -> str | None:
    """yes / no that a reply states; None when it does not say (or says both)."""
    text = strip_lead_in(reply)
    words = normalize(text).split()
    if not words:
        return None
    if words[0] in _YES:
        return "yes"
    if words[0] in _NO:
        return "no"
    stated = stated_answer(text)
    if stated:
        sw = normalize(stated).split()
        if sw and sw[0] in _YES | _NO:
            return "yes" if sw[0] in _YES else "no"
    if is_hedged(" ".join(words)):
        return None
    yes = any(w in _YES for w in words)
    no = has_negation(words)
    if yes != no:
        return "yes" if yes else "no"
    return None  # "There is a red circle." restates; "The circle is blue." may mean no


class RuleJudge:
    """Chooses a rule per item from its task, else from the shape of question and references."""

    name = "rule"

    def __init__(self, rel_tol: float = 1e-3, abs_tol: float = 1e-6) -> None:
        self.rel_tol = rel_tol
        self.abs_tol = abs_tol
        self._counts: Counter[str] = Counter()
        self._correct = 0
        self._undecided = 0

    def rule_for(self, item: JudgeItem) -> str:
        return _rule_for(item.task, item.question, item.references)

    def judge_one(self, item: JudgeItem) -> Verdict:
        rule = self.rule_for(item)
        refs = [r for r in item.references if r.strip()]
        if not refs:
            return Verdict(False, rule, "no reference answer")
        if not (item.response or "").strip():
            return Verdict(False, "empty", "empty reply")
        if rule == "mc":
            options = parse_options(item.question)
            got, how = _mc_choice(item.response, options)
            want = {w for r in refs if (w := _mc_letter(r, options)) is not None}
            if got is None:
                correct = False if how == "none" else None
                return Verdict(correct, rule, f"no single option ({how})")
            return Verdict(got in want, rule, f"got {got} ({how}), want {sorted(want)}")
        if rule == "yesno":
            said = _polarity(item.response)
            truth = {normalize(r).split()[0] for r in refs}
            return Verdict(None if said is None else said in truth, rule, f"got {said}")
        if rule == "numeric":
            return self._numeric(item, refs)
        return _short_answer(item, refs)

    def _numeric(self, item: JudgeItem, refs: list[str]) -> Verdict:
        text = strip_lead_in(item.response)
        stated = stated_answer(text)
        value = None
        if stated and len(set(nums := numbers_in(normalize(stated)))) == 1:
            value = nums[0]
        if value is None:
            value = counted_number(normalize(text), item.question)
        if value is None:
            said = normalize(stated) if stated else normalize(text)
            if not NUM_RE.search(said) and len(said.split()) <= 3:
                # "The answer is twox." / "Many.": a stated answer with no number at all
                return Verdict(False, "numeric", f"no number in {said!r}")
            return Verdict(None, "numeric", "no single number")
        wants = [parse_number(r) for r in refs]
        ok = any(
            w is not None and math.isclose(value, w, rel_tol=self.rel_tol, abs_tol=self.abs_tol)
            for w in wants
        )
        return Verdict(ok, "numeric", f"got {value:g}")

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        out = [self.judge_one(it) for it in items]
        for v in out:
            self._counts[v.rule] += 1
            self._correct += v.correct is True
            self._undecided += v.correct is None
        return out

    def stats(self) -> dict:
        return {
            "items": sum(self._counts.values()),
            "correct": self._correct,
            "undecided": self._undecided,
            "by_rule": dict(self._counts),
        }


def _rule_for(task: str | None, question: str, references: tuple[str, ...]) -> str:
    """The rule for a (task, question, references): from the task, else from their shape.
    Not cached: every sample has its own question, and a probe's query comes back only after
    many other demonstrations (an LRU cache cost more than it saved on bench/judge.py)."""
    rule = TASK_RULES.get((task or "").lower())
    options = parse_options(question)
    if rule == "mc" or (
        rule is None and options and all(_mc_letter(r, options) is not None for r in references)
    ):
        return "mc" if options else "exact"
    if rule:
        return rule
    refs = [normalize(r) for r in references if r.strip()]
    if refs and all(r in ("yes", "no") for r in refs):
        return "yesno"
    if refs and all(NUM_RE.fullmatch(r) for r in refs):
        return "numeric"
    return "exact"


def _short_answer(item: JudgeItem, refs: list[str]) -> Verdict:
    """Colour / shape / word / free-text references against a reply that may be a sentence."""
    text = strip_lead_in(item.response)
    norm = normalize(text)
    want = [normalize(r) for r in refs]
    if norm in want:
        return Verdict(True, "exact", "")
    stated = stated_answer(text)
    if stated and normalize(stated) in want:
        return Verdict(True, "exact", "stated answer")
    words = norm.split()
    positive = negated = False
    for ref in want:
        for i in phrase_positions(words, ref.split()):
            if negated_at(words, i):
                negated = True
            else:
                positive = True
    hedged = is_hedged(norm)
    # Members of the reference's closed vocabulary the reply names, minus the question's own.
    vocab = next((v for r in want if (v := vocabulary_of(r))), None)
    others: set[str] = set()
    if vocab:
        others = vocabulary_mentions(words, vocab) - set(want)
        if others:  # the question's own words are context ("the car next to the blue truck")
            others -= set(normalize(item.question).split())
    if positive:
        if hedged or others:
            return Verdict(None, "contains", f"reference and also {sorted(others) or 'a hedge'}")
        return Verdict(True, "contains", "")
    if hedged:
        return Verdict(None, "contains", "hedged reply without the reference")
    if negated:
        return Verdict(False, "contains", "reference negated")
    if others:
        return Verdict(False, "vocab", f"names {sorted(others)}")
    longest = max(len(r.split()) for r in want)
    if stated and len(normalize(stated).split()) <= longest + 3:
        return Verdict(False, "short", f"stated {normalize(stated)!r}")
    if len(words) <= max(3, longest + 1):
        return Verdict(False, "short", f"got {norm!r}")
    return Verdict(None, "contains", "long reply without the reference")
