"""Rule-based judge: tables of (question, reference, response, expected) per rule."""

from __future__ import annotations

import pytest

from selection.judges import JudgeItem, load_judge
from selection.judges.rules import normalize, parse_number, parse_options

MC_Q = (
    "What colour is the circle at the top left?\nA. red\nB. green\nC. blue\nD. dark blue\n"
    "Answer with the option's letter from the given choices directly."
)
INLINE_MC_Q = "Which animal barks? (A) a cat (B) the dog (C) fish"

EXACT = [
    ("cat", "cat", True),
    ("cat", "Cat.", True),
    ("cat", "  the CAT!  ", True),
    ("the red square", "red square", True),
    ("two cats", "2 cats", True),
    ("2 cats", "Two cats", True),
    ("ice cream", "ice  cream", True),
    ("cat", "dog", False),
    ("cat", "cats", True),  # a plural names the same thing
    ("cat", "a cat on a mat", True),  # the reference as whole words, not negated
    ("cat", "concatenate", False),  # ... but never inside another word
    ("yes it is", "yes", False),
]
MC = [
    (MC_Q, "B", "B", True),
    (MC_Q, "B", "(B)", True),
    (MC_Q, "B", "B.", True),
    (MC_Q, "B", "b", True),
    (MC_Q, "B", "B) green", True),
    (MC_Q, "B", "green", True),
    (MC_Q, "B", "Green.", True),
    (MC_Q, "B", "The answer is B", True),
    (MC_Q, "B", "Answer: (B)", True),
    (MC_Q, "green", "B", True),  # reference given as the option's text
    (MC_Q, "B", "A", False),
    (MC_Q, "B", "red", False),
    (MC_Q, "D", "dark blue", True),
    (MC_Q, "C", "dark blue", False),  # "blue" is inside "dark blue" but is not it
    (MC_Q, "B", "E", False),
    (MC_Q, "B", "I think so", False),
    (INLINE_MC_Q, "B", "the dog", True),
    (INLINE_MC_Q, "B", "dog", True),
    (INLINE_MC_Q, "A", "A cat", True),
    (INLINE_MC_Q, "B", "A cat", False),
]
YESNO = [
    ("Yes", "yes", True),
    ("Yes", "Yes.", True),
    ("Yes", "yes, there is a red circle", True),
    ("No", "no", True),
    ("No", "No, there is not.", True),
    ("No", "yes", False),
    ("Yes", "There is a circle", None),  # a restatement is not a yes ("The circle is blue")
    ("Yes", "", False),
]
NUMERIC = [
    ("3", "3", True),
    ("3", "three", True),
    ("3", "3.0", True),
    ("3", "There are 3.", True),
    ("3", "4", False),
    ("3", "3 or 4", None),  # two numbers: no single answer, undecided
    ("1000", "1,000", True),
    ("3.14", "3.1405", True),  # within the default relative tolerance 1e-3
    ("3.14", "3.2", False),
    ("0", "zero", True),
    ("12", "twelve", True),
]


def _judge(question, refs, response, task=None):
    judge = load_judge("rule")
    return judge.judge([JudgeItem(question, tuple(refs), response, task)])[0]


@pytest.mark.parametrize(("ref", "resp", "expected"), EXACT)
def test_exact_match(ref, resp, expected):
    v = _judge("What is shown?", [ref], resp)
    assert v.correct is expected and v.rule in ("exact", "contains", "short")


@pytest.mark.parametrize(("question", "ref", "resp", "expected"), MC)
def test_multiple_choice(question, ref, resp, expected):
    v = _judge(question, [ref], resp)
    assert (v.correct, v.rule) == (expected, "mc")


@pytest.mark.parametrize(("ref", "resp", "expected"), YESNO)
def test_yes_no(ref, resp, expected):
    v = _judge("Is there a red circle? Answer yes or no.", [ref], resp)
    assert (v.correct, v.rule) == (expected, "empty" if not resp else "yesno")


@pytest.mark.parametrize(("ref", "resp", "expected"), NUMERIC)
def test_numeric_with_tolerance(ref, resp, expected):
    v = _judge("How many circles are there?", [ref], resp)
    assert (v.correct, v.rule) == (expected, "numeric")


def test_numeric_tolerance_is_a_parameter():
    item = JudgeItem("How many?", ("100",), "103")
    assert load_judge("rule").judge([item])[0].correct is False
    assert load_judge("rule", rel_tol=0.05).judge([item])[0].correct is True


@pytest.mark.parametrize(
    ("refs", "resp", "expected"),
    [
        (["cat", "kitten", "kitty"], "Kitten", True),
        (["cat", "kitten"], "dog", False),
        (["2", "two", "a pair"], "pair", True),
        (["", "yes"], "yes", True),
        ([""], "anything", False),
    ],
)
def test_several_references_any_matches(refs, resp, expected):
    assert _judge("What is it?", refs, resp).correct is expected


@pytest.mark.parametrize(
    ("task", "question", "ref", "rule"),
    [
        ("yesno", "Is it?", "Yes", "yesno"),
        ("mc", MC_Q, "B", "mc"),
        ("count", "How many?", "3", "numeric"),
        ("short", "What word?", "tree", "exact"),
        (None, MC_Q, "B", "mc"),
        (None, "Is it red?", "no", "yesno"),
        (None, "How many?", "7", "numeric"),
        (None, "What word?", "tree", "exact"),
        (None, "What is written?", "route 66", "exact"),  # a number inside text is not numeric
        ("mc", "No options listed here", "B", "exact"),  # cannot be MC without options
    ],
)
def test_rule_is_chosen_from_task_or_shape(task, question, ref, rule):
    assert _judge(question, [ref], ref, task).rule == rule


def test_helpers_and_stats():
    assert normalize("The Two  cats, 3.5 and 1,000!") == "2 cats 3.5 and 1000"
    assert parse_number("three") == 3.0 and parse_number("1 and 2") is None
    assert parse_options(MC_Q) == {"A": "red", "B": "green", "C": "blue", "D": "dark blue"}
    assert parse_options("I. am not an option list") == {}
    judge = load_judge("rule")
    judge.judge(
        [
            JudgeItem(MC_Q, ("B",), "B"),
            JudgeItem("Is it?", ("yes",), "no"),
            JudgeItem("q", ("x",), "x"),
        ]
    )
    assert judge.stats() == {
        "items": 3,
        "correct": 2,
        "undecided": 0,
        "by_rule": {"mc": 1, "yesno": 1, "exact": 1},
    }


def test_unknown_judge_is_a_clear_error():
    from store.errors import ThresherError

    with pytest.raises(ThresherError, match="unknown judge 'vibes'"):
        load_judge("vibes")
