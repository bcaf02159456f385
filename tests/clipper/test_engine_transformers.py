"""The transformers engine on tiny random Qwen2-VL and Idefics3 models loaded via from_pretrained."""

from __future__ import annotations

import math

import pytest

from selection.engines import Engine, EngineError, Turn, assistant, load_engine, perplexity, user
from tests.helpers.tiny_vlm import tiny_vlm

pytestmark = pytest.mark.slow
ARCHS = ["qwen2_vl", "idefics3"]


@pytest.fixture(scope="module", autouse=True)
def _threads():
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from tests.helpers.tiny_vlm import make_images

    return make_images(tmp_path_factory.mktemp("imgs"), 3)


@pytest.fixture(scope="module", params=ARCHS)
def engine(request):
    eng = load_engine("transformers", str(tiny_vlm(request.param)), batch_size=3, device="cpu")
    yield eng
    eng.close()


def _requests(images):
    return [
        (user("What colour is this?", images[0]),),
        (user("Which image shows a square?", images[0], images[1]),),  # two images, one turn
        (user("First?", images[1]), assistant("green"), user("And this one?", images[2])),
        (user("A question without any image."),),
        (user("Is it red?", images[2]),),
    ]


def test_loaded_through_from_pretrained_and_satisfies_the_protocol(engine):
    assert isinstance(engine, Engine)
    assert engine.name == "transformers"
    assert engine.model.config.model_type in ("qwen2_vl", "idefics3")
    assert not engine.model.training


def test_generate_is_greedy_batched_and_order_preserving(engine, images):
    reqs = _requests(images)
    batched = engine.generate(reqs, max_new_tokens=4)
    assert len(batched) == len(reqs) and all(isinstance(t, str) for t in batched)
    # Left padding must not change a greedy answer: each alone equals its batched answer.
    singles = [engine.generate([r], max_new_tokens=4)[0] for r in reqs]
    assert singles == batched
    assert engine.generate(reqs, max_new_tokens=4) == batched  # deterministic


def test_two_images_in_one_prompt_reach_the_model(engine, images):
    """Swapping one of two images changes the answer's likelihood: both images are used."""
    q = "Which image shows a square?"
    a = engine.answer_logprobs([(user(q, images[0], images[1]),)], ["the first"])[0]
    b = engine.answer_logprobs([(user(q, images[0], images[2]),)], ["the first"])[0]
    c = engine.answer_logprobs([(user(q, images[2], images[1]),)], ["the first"])[0]
    assert a[1] == b[1] == c[1] > 0
    assert a[0] != b[0] and a[0] != c[0]


def test_answer_logprobs_score_only_answer_tokens(engine, images):
    reqs = _requests(images)
    answers = ["red", "the first one", "blue", "", "no"]
    got = engine.answer_logprobs(reqs, answers)
    tok = engine.processor.tokenizer
    for (lp, n), ans in zip(got, answers, strict=True):
        assert n == len(tok(ans, add_special_tokens=False)["input_ids"])
        assert (lp < 0) if n else (lp == 0.0)
    # batch-invariant, and equal to a by-hand teacher-forced computation for one request
    assert [
        engine.answer_logprobs([r], [a])[0] for r, a in zip(reqs, answers, strict=True)
    ] == pytest.approx(got, rel=1e-4, abs=1e-4)
    assert got[0] == pytest.approx(_by_hand(engine, reqs[0], answers[0]), rel=1e-4)
    assert math.isfinite(perplexity(*got[0])) and perplexity(0.0, 0) == math.inf


def _last_positions(engine, reqs, answers):
    """The position id of each row's last token, as the decoder's rotary embedding receives it."""
    rotary = [m for m in engine.model.modules() if type(m).__name__.endswith("RotaryEmbedding")]
    seen = []

    def hook(module, args, kwargs):
        pos = kwargs.get("position_ids", args[1] if len(args) > 1 else None)
        seen.append(pos[..., -1].reshape(-1, pos.shape[-2])[0].tolist())  # (B,) of dim 0

    handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in rotary[-1:]]
    try:
        engine.answer_logprobs(reqs, answers)
    finally:
        for h in handles:
            h.remove()
    return seen[0]


def test_left_padding_does_not_shift_positions(engine, images):
    """A left-padded row must see the positions it would see alone (transformers' generate()
    derives them from the mask; a plain forward numbers 0..width-1 unless told). Otherwise a
    perplexity depends on the batch it was scored in (the Idefics3 failure on another CPU)."""
    reqs = [r for r in _requests(images) if any(t.images for t in r)][:3]
    answers = ["red", "the first one", "blue"]
    batched = _last_positions(engine, reqs, answers)
    alone = [_last_positions(engine, [r], [a])[0] for r, a in zip(reqs, answers, strict=True)]
    assert len(set(alone)) > 1  # rows of different lengths, so the batch really pads
    assert batched == alone


def _by_hand(engine, req, answer):
    import torch

    from selection.engines.transformers_engine import _load_images, _messages

    proc = engine.processor
    prompt = proc.apply_chat_template(_messages(req), add_generation_prompt=True, tokenize=False)
    enc = proc(text=[prompt], images=[_load_images(req)], return_tensors="pt")
    ans = proc.tokenizer(answer, add_special_tokens=False, return_tensors="pt")["input_ids"]
    ids = torch.cat([enc["input_ids"], ans], dim=1)
    inputs = dict(enc)
    inputs["input_ids"] = ids
    inputs["attention_mask"] = torch.ones_like(ids)
    for key in ("mm_token_type_ids", "token_type_ids"):
        if key in inputs:
            inputs[key] = torch.cat([inputs[key], torch.zeros_like(ans)], dim=1)
    with torch.inference_mode():
        logits = engine.model(**inputs).logits[0].float()
    n = ans.shape[1]
    lp = torch.log_softmax(logits[-n - 1 : -1], dim=-1)
    return float(lp.gather(-1, ans[0].unsqueeze(-1)).sum()), n


def test_bad_requests_are_named(engine, tmp_path):
    with pytest.raises(EngineError, match="#0 must end with a user turn"):
        engine.generate([(user("q"), assistant("a"))])
    with pytest.raises(EngineError, match="role 'robot'"):
        engine.generate([(Turn("robot", "x"),)])
    with pytest.raises(EngineError, match="cannot read image .*nope.png"):
        engine.generate([(user("q", str(tmp_path / "nope.png")),)])


def test_unknown_engine_and_missing_model_are_clear_errors(tmp_path):
    with pytest.raises(EngineError, match="unknown engine 'tgi'"):
        load_engine("tgi", "x")
    with pytest.raises(EngineError, match="cannot load model"):
        load_engine("transformers", str(tmp_path / "no-model-here"))
