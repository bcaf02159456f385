"""Answer extraction for the rule judge: what a chat VLM's sentence reply actually answers.

Real chat VLMs answer in sentences ("Looking at the image, the answer is rectangle.",
"No, there is no circle.", "There are three circles."). These helpers pull the answer out of
such a reply -- a yes/no polarity, an option letter, a number, a short phrase -- and say
None when the reply does not state one clearly. They never guess: None becomes *undecided*.
"""

from __future__ import annotations

import contextlib
import re
import string
from functools import lru_cache

NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "single": 1, "once": 1,
    "twice": 2, "pair": 2, "dozen": 12, "none": 0,
}  # fmt: skip
ARTICLES = frozenset({"a", "an", "the"})
NEGATIONS = frozenset(
    {"no", "not", "none", "never", "neither", "nor", "nothing", "nobody", "cannot", "without"}
)
# "isn't" loses its apostrophe to normalisation: "isn t"; a lone "t" after these is a negation.
_NT_STEMS = frozenset(
    {"isn", "aren", "wasn", "weren", "doesn", "don", "didn", "can", "couldn", "won", "hasn"}
    | {"haven", "hadn", "shouldn", "wouldn", "ain", "mustn"}
)
# A reply that declines to answer, or offers several answers, states none.
HEDGES = (
    "not sure", "unsure", "cannot determine", "can not determine", "cannot tell", "can t tell",
    "can t determine", "unable to", "impossible to", "hard to tell", "difficult to tell",
    "difficult to determine", "not possible to", "unclear", "i don t know", "cannot be determined",
    "not enough information", "either", "maybe", "or possibly",
)  # fmt: skip


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Closed vocabularies: a reply naming a different member than the reference is a clear miss.
VOCABULARIES = (
    _words(
        "red orange yellow green blue purple violet pink brown black white gray grey cyan "
        "magenta beige tan gold silver maroon navy teal turquoise"
    ),
    _words(
        "circle square rectangle triangle oval ellipse star diamond hexagon pentagon octagon "
        "cross heart line arrow polygon trapezoid rhombus cube sphere cylinder cone"
    ),
    _words("left right top bottom center centre middle above below up down"),
    _words("small large big tiny huge medium little"),
)
_VOCAB_OF = {w: v for v in VOCABULARIES for w in v}
_VOCAB_OF |= {w + "s": v for v in VOCABULARIES for w in v if len(w) > 2}

_PUNCT = str.maketrans({c: " " for c in string.punctuation})
NUM_RE = re.compile(r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")
# "the answer is X", "Answer: X", "final answer: X", "my answer would be X"; X ends at a sentence end.
_ANSWER_IS = re.compile(
    r"\b(?:answer|choice|option)\s*(?:would be|should be|is|:|-)\s*:?\s*(.+?)(?:\.(?!\d)|[!\n;]|$)",
    re.IGNORECASE,
)
# "Looking at the image, ..." / "In the picture, ..." / "Based on the image provided, ..."
_LEAD_IN = re.compile(
    r"^\s*(?:looking at|based on|from|in|according to|upon examining|observing|in this)"
    r"[^,.:]{0,60}?(?:image|picture|photo|figure|scene|diagram)[^,.:]{0,30}[,:]\s*",
    re.IGNORECASE,
)


@lru_cache(maxsize=4096)  # for references ("yes", "2", "red") and options; replies rarely repeat
def normalize(text: str) -> str:
    """Lowercase, drop punctuation and articles, number words -> digits, squeeze spaces."""
    text = text.lower()
    # keep decimal points and thousands separators inside numbers before punctuation goes
    if "," in text:
        text = _THOUSANDS.sub("", text)
    if "." in text:
        text = _DECIMAL.sub("\x00", text)
    text = text.translate(_PUNCT).replace("\x00", ".")
    return " ".join([_DIGITS.get(w, w) for w in text.split() if w not in ARTICLES])


# Words that become digits in normalised text (not "pair", "none", "once": those read as words).
_DIGITS = {
    w: str(v) for w, v in NUMBER_WORDS.items() if w not in ("single", "once", "pair", "none")
}
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_DECIMAL = re.compile(r"(?<=\d)\.(?=\d)")


def strip_lead_in(reply: str) -> str:
    """Drop "Looking at the image, " style openings that precede the actual answer."""
    return _LEAD_IN.sub("", reply, count=1)


def stated_answer(reply: str) -> str | None:
    """X of "the answer is X" / "Answer: X" (the last such statement), else None."""
    low = reply.lower()
    if "answer" not in low and "option" not in low and "choice" not in low:
        return None  # cheap test first: most replies state no "answer is"
    found = _ANSWER_IS.findall(reply)
    return found[-1].strip() if found else None


_HEDGED = re.compile(r"(?<!\S)(?:" + "|".join(re.escape(h) for h in (*HEDGES, "or")) + r")(?!\S)")


def is_hedged(norm: str) -> bool:
    """A normalised reply that declines to answer or hedges between answers ("red or blue")."""
    return _HEDGED.search(norm) is not None


def negated_at(words: list[str], i: int) -> bool:
    """Is the phrase starting at word i negated by one of the two words before it?

    "not red", "no circle", "isn't red" (normalised "isn t red"), "not a circle" (articles are
    already gone). A negation further back ("no, it is red") does not count."""
    for j in range(max(0, i - 2), i):
        w = words[j]
        if w in NEGATIONS or (w == "t" and j > 0 and words[j - 1] in _NT_STEMS):
            return True
    return False


def has_negation(words: list[str]) -> bool:
    return any(
        w in NEGATIONS or (w == "t" and i > 0 and words[i - 1] in _NT_STEMS)
        for i, w in enumerate(words)
    )


def phrase_positions(words: list[str], phrase: list[str]) -> list[int]:
    """Start indices where `phrase` occurs as whole words (a trailing plural 's' allowed)."""
    n = len(phrase)
    if not n:
        return []
    if n == 1:
        forms = (phrase[0], phrase[0] + "s", phrase[0] + "es")
        return [i for i, w in enumerate(words) if w in forms]
    out = []
    head, last = phrase[:-1], phrase[-1]
    for i in range(len(words) - n + 1):
        if words[i : i + n - 1] == head and words[i + n - 1] in (last, last + "s", last + "es"):
            out.append(i)
    return out


def vocabulary_of(phrase: str) -> frozenset[str] | None:
    """The closed vocabulary (colours, shapes, positions, sizes) a one-word answer belongs to."""
    words = phrase.split()
    return _VOCAB_OF.get(words[0]) if len(words) == 1 else None


def vocabulary_mentions(words: list[str], vocab: frozenset[str]) -> set[str]:
    """Members of `vocab` the reply names without negating them (plurals folded)."""
    out = set()
    for i, w in enumerate(words):
        base = w if w in vocab else (w[:-1] if w.endswith("s") and w[:-1] in vocab else None)
        if base and not negated_at(words, i):
            out.add("grey" if base == "gray" else "centre" if base == "center" else base)
    return out


def numbers_in(norm: str) -> list[float]:
    """Every number a normalised text states, in order."""
    out = []
    for tok in NUM_RE.findall(norm):
        with contextlib.suppress(ValueError):
            out.append(float(tok))
    return out


_HOW_MANY = re.compile(r"\bhow\s+many\s+([A-Za-z]+)", re.IGNORECASE)


def counted_number(norm_reply: str, question: str) -> float | None:
    """The count a reply gives for "How many X": the number right before X (two words of
    slack for adjectives: "three red circles"); a single stated number otherwise; "no X" is 0.
    Numbers the question itself states are context, not the answer ("The number 3 is a word in
    English." answers nothing to "Write the number 3 as a word"), unless the reply is just one."""
    nums = numbers_in(norm_reply)
    words = norm_reply.split()
    if len(words) == 1 and nums:
        return nums[0]
    if any(c.isdigit() for c in question) or any(w in _DIGITS for w in question.lower().split()):
        asked = set(numbers_in(normalize(question)))
        nums = [n for n in nums if n not in asked]
    m = _HOW_MANY.search(question)
    noun = m.group(1).lower().rstrip("s") if m else None
    if noun:
        near = set()
        for i, w in enumerate(words):
            if w.rstrip("s") == noun or (noun and w.startswith(noun)):
                for j in range(max(0, i - 3), i):
                    if NUM_RE.fullmatch(words[j]):
                        near.add(float(words[j]))
                    elif words[j] in ("no", "zero", "none"):
                        near.add(0.0)
        if len(near) == 1:
            return near.pop()
    if len(set(nums)) == 1:
        return nums[0]
    if not nums and ("none" in words or (" no " in f" {norm_reply} " and noun)):
        return 0.0
    return None
