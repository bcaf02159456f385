"""The rule judge on replies shaped like real chat VLMs' (Qwen2.5-VL, LLaVA-1.5/NeXT, Llama-3.2-Vision).

Asked without an answer format these models answer in sentences: "Yes, there is a red circle in
the top left corner.", "Looking at the image, the answer is rectangle.", "There are three
circles in the image." The replies below are written in those shapes (lead-ins, restated
questions, trailing explanations, markdown bold, hedges). Expected verdicts: True / False for
clear cases, None (undecided) where a careful human would not decide from the text alone.
"""

from __future__ import annotations

import pytest

from selection.judges import JudgeItem, load_judge
from tests.helpers.chat_server import ChatServer

MC_Q = (
    "What colour is the circle at the top left?\nA. red\nB. green\nC. blue\nD. dark blue\n"
    "Answer with the option's letter from the given choices directly."
)
SQA_Q = (
    "Which of these states is farthest north?\nContext: N/A\nOptions: (A) Arizona "
    "(B) Maine (C) Texas (D) Florida"
)
SHAPE_Q = "What shape is the large object in the middle?"
COLOUR_Q = "What color is the square?"
COUNT_Q = "How many circles are in the image?"
YES_Q = "Is there a red circle in the image?"

CASES = [
    # --- yes / no -------------------------------------------------------------------------
    (YES_Q, "Yes", "Yes, there is a red circle in the top left corner of the image.", True),
    (YES_Q, "Yes", "Yes.", True),
    (YES_Q, "Yes", "Yes, it does.", True),
    (YES_Q, "Yes", "**Yes**, a red circle is visible near the center.", True),
    (YES_Q, "No", "No, there is no red circle in the image.", True),
    (YES_Q, "No", "No, there is no circle", True),
    (YES_Q, "No", "There is no red circle in the image.", True),
    (YES_Q, "No", "The image does not contain a red circle; the only circle is blue.", True),
    (YES_Q, "No", "No.", True),
    (YES_Q, "No", "Looking at the image, I can't see any red circle.", True),
    (YES_Q, "Yes", "No, there isn't a red circle.", False),
    (YES_Q, "No", "Yes, there is a red circle on the left side.", False),
    (YES_Q, "Yes", "There isn't one.", False),
    (YES_Q, "Yes", "The answer is yes.", True),
    (YES_Q, "No", "The answer is no.", True),
    (YES_Q, "Yes", "It's hard to tell from this image.", None),  # hedged
    (YES_Q, "Yes", "There is a circle, but I'm not sure whether it is red.", None),
    (YES_Q, "Yes", "The circle in the image appears to be red.", None),  # no yes, no no
    (YES_Q, "No", "Maybe, the colour could be red or orange.", None),
    # --- multiple choice ------------------------------------------------------------------
    (MC_Q, "B", "B", True),
    (MC_Q, "B", "The answer is B. green", True),
    (MC_Q, "B", "B. green", True),
    (MC_Q, "B", "The correct answer is (B) green.", True),
    (
        MC_Q,
        "B",
        "Looking at the image, the circle at the top left is green, so the answer is B.",
        True,
    ),
    (MC_Q, "B", "I would choose option B.", True),
    (MC_Q, "B", "The circle at the top left is green.", True),
    (MC_Q, "D", "The circle is dark blue.", True),
    (MC_Q, "C", "The circle is dark blue.", False),  # "blue" sits inside "dark blue"
    (MC_Q, "A", "The circle is red, not blue.", True),  # negated option does not count
    (MC_Q, "B", "A. red", False),
    (MC_Q, "B", "The answer is C.", False),
    (MC_Q, "B", "The answer is purple.", False),  # names nothing listed: a clear miss
    (MC_Q, "B", "It could be A or B.", None),  # two letters
    (MC_Q, "B", "The circle could be red or green depending on the lighting.", None),
    (MC_Q, "B", "The image shows several shapes in a grid with varying colours and sizes.", None),
    (SQA_Q, "B", "The answer is B. Maine is the farthest north of these states.", True),
    (SQA_Q, "B", "(B) Maine", True),
    (SQA_Q, "B", "Maine", True),
    (SQA_Q, "B", "Maine is the state farthest north.", True),
    (SQA_Q, "B", "Texas", False),
    (SQA_Q, "A", "Of the options, Maine lies farthest north.", False),
    # --- counting -------------------------------------------------------------------------
    (COUNT_Q, "3", "There are three circles in the image.", True),
    (COUNT_Q, "3", "3", True),
    (COUNT_Q, "3", "There are 3 circles.", True),
    (COUNT_Q, "3", "I can see three red circles and two blue squares.", True),
    (COUNT_Q, "3", "The image contains 3 circles: two small ones and one large one.", True),
    (COUNT_Q, "3", "The answer is 3.", True),
    (COUNT_Q, "2", "There are three circles in the image.", False),
    (COUNT_Q, "4", "3", False),
    (COUNT_Q, "0", "There are no circles in the image.", True),
    (COUNT_Q, "1", "There is one circle.", True),
    (COUNT_Q, "12", "Twelve circles are visible.", True),
    (COUNT_Q, "3", "There are 3 or 4 circles.", None),
    (COUNT_Q, "3", "It is difficult to count the circles precisely.", None),
    (COUNT_Q, "3", "I see 2 squares, 5 triangles and 4 stars.", None),  # no circles counted
    (COUNT_Q, "3", "Many.", False),  # a short reply with no number at all
    (COUNT_Q, "3", "I'm not sure how many there are.", None),
    ("Write the number 2 as an English word.", "two", "The answer is twenty.", False),
    ("Write the number 3 as an English word.", "three", "The number 3 is a word in English.", None),
    ("What is 13 plus 11?", "24", "13 plus 11 is 24.", True),
    ("What is 13 plus 11?", "24", "13 plus 11 equals 25.", False),
    ("How many people are in the photo?", "2", "There are two people in the photo.", True),
    ("How many people are in the photo?", "5", "There are two people in the photo.", False),
    # --- colour / shape / word -------------------------------------------------------------
    (SHAPE_Q, "rectangle", "Looking at the image, the answer is rectangle.", True),
    (SHAPE_Q, "circle", "Looking at the image, the answer is rectangle.", False),
    (SHAPE_Q, "rectangle", "Rectangle", True),
    (SHAPE_Q, "rectangle", "The large object in the middle is a rectangle.", True),
    (SHAPE_Q, "circle", "The large object in the middle is a rectangle.", False),
    (SHAPE_Q, "circle", "It is a circle.", True),
    (SHAPE_Q, "circle", "It's not a circle, it's an oval.", False),
    (SHAPE_Q, "triangle", "The shape is a triangle, not a square.", True),
    (SHAPE_Q, "circle", "It could be a circle or an oval.", None),
    (COLOUR_Q, "red", "The square is red.", True),
    (COLOUR_Q, "red", "Red.", True),
    (COLOUR_Q, "red", "In the image, the square is colored red.", True),
    (COLOUR_Q, "red", "The square is blue.", False),
    (COLOUR_Q, "red", "The square is blue, not red.", False),
    (COLOUR_Q, "red", "The square appears to be a shade of crimson.", None),  # synonym: ask an LLM
    (COLOUR_Q, "red", "It might be red or orange.", None),
    (COLOUR_Q, "gray", "The square is grey.", False),  # spelling variants are a judgement call
    ("What color is the car next to the blue truck?", "red", "The car is red.", True),
    (
        "What color is the car next to the blue truck?",
        "red",
        "The car next to the blue truck is red.",
        True,
    ),
    ("What is written on the sign?", "stop", 'The sign says "STOP".', True),
    ("What is written on the sign?", "stop", "The sign reads YIELD.", False),
    ("What is written on the sign?", "stop", "The sign on the corner has white text on it.", None),
    ("What animal is on the sofa?", "cat", "A cat is lying on the sofa.", True),
    ("What animal is on the sofa?", "cat", "Dog", False),
    ("What animal is on the sofa?", "cat", "There is no cat; it is a small dog.", False),
    ("Which side is the tree on?", "left", "The tree is on the left side of the image.", True),
    ("Which side is the tree on?", "left", "The tree is on the right.", False),
    # --- free text / multi-reference (VQA) -------------------------------------------------
    ("What is the man holding?", "umbrella", "The man is holding an umbrella.", True),
    ("What is the man holding?", "umbrella", "He is holding a black umbrella over his head.", True),
    ("What is the man holding?", "umbrella", "A newspaper.", False),
    ("What is the man holding?", "umbrella", "I'm not sure what he is holding.", None),
    ("What sport is being played?", "tennis", "They are playing tennis on a clay court.", True),
    ("What sport is being played?", "tennis", "Based on the image, it looks like badminton.", None),
    ("What sport is being played?", "tennis", "Badminton", False),
    ("What type of vehicle is shown?", "fire truck", "This is a red fire truck.", True),
    ("What type of vehicle is shown?", "fire truck", "A truck.", False),
    (
        "Where is the cat sitting?",
        "on the windowsill",
        "The cat is sitting on the windowsill.",
        True,
    ),
]
# Several references (VQA v2 style): any one matching counts.
MULTI = [
    ("What is the man holding?", ("umbrella", "parasol"), "He holds a parasol.", True),
    ("What is the man holding?", ("umbrella", "parasol"), "He holds a cane.", False),
    ("What is the weather like?", ("sunny", "clear"), "It is a clear, sunny day.", True),
]


@pytest.fixture(scope="module")
def judge():
    return load_judge("rule")


def test_table_is_large_and_covers_every_kind():
    assert len(CASES) + len(MULTI) >= 80
    assert sum(c[3] is None for c in CASES) >= 10  # hedged / unclear replies are in the table
    assert sum(c[3] is False for c in CASES) >= 20


@pytest.mark.parametrize(("question", "truth", "reply", "expected"), CASES)
def test_sentence_replies(judge, question, truth, reply, expected):
    v = judge.judge([JudgeItem(question, (truth,), reply)])[0]
    assert v.correct is expected, v


@pytest.mark.parametrize(("question", "refs", "reply", "expected"), MULTI)
def test_any_reference(judge, question, refs, reply, expected):
    assert judge.judge([JudgeItem(question, refs, reply)])[0].correct is expected


def test_every_verdict_names_what_decided_it():
    judge = load_judge("rule")
    verdicts = judge.judge([JudgeItem(q, (t,), r) for q, t, r, _ in CASES])
    rules = {v.rule for v in verdicts}
    assert rules <= {"exact", "contains", "vocab", "short", "yesno", "mc", "numeric", "empty"}
    assert {"yesno", "mc", "numeric", "contains", "vocab"} <= rules
    assert judge.stats()["undecided"] == sum(c[3] is None for c in CASES)


def test_null_and_blank_replies_are_wrong_and_named(judge):
    for reply in ("", "   \n", None):
        v = judge.judge([JudgeItem(COLOUR_Q, ("red",), reply)])[0]  # type: ignore[arg-type]
        assert (v.correct, v.rule) == (False, "empty")


def test_auto_sends_only_undecided_replies_to_the_llm(tmp_path):
    from selection.judges.llm import PROMPT

    undecided = [c for c in CASES if c[3] is None][:3]
    decided = [c for c in CASES if c[3] is not None][:5]
    script = {
        PROMPT.format(question=q, references=t, response=r): "yes" for q, t, r, _ in undecided
    }
    items = [JudgeItem(q, (t,), r) for q, t, r, _ in undecided + decided]
    with ChatServer(script) as srv:
        llm = {"model": "judge-m", "base_url": srv.base_url, "cache_path": tmp_path / "c.jsonl"}
        verdicts = load_judge("auto", llm=llm).judge(items)
        assert len(srv.requests) == len(undecided)
    assert [v.rule for v in verdicts[: len(undecided)]] == ["llm"] * len(undecided)
    assert all(v.correct is True and "undecided" in v.detail for v in verdicts[: len(undecided)])
    assert [v.correct for v in verdicts[len(undecided) :]] == [c[3] for c in decided]


def test_auto_without_llm_keeps_undecided_apart():
    judge = load_judge("auto")
    q, t, r, _ = next(c for c in CASES if c[3] is None)
    verdicts = judge.judge([JudgeItem(q, (t,), r), JudgeItem(COLOUR_Q, ("red",), "Red.")])
    assert [v.correct for v in verdicts] == [None, True]
    assert judge.stats()["by_rule"] == {"undecided": 1, "exact": 1}
