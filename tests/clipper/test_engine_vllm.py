"""The vLLM engine: the missing-extra error, and its use of vLLM's API through a stand-in module.

vLLM needs a GPU, which the test machines lack: that is the one boundary where a test double
stands in. The stand-in implements the documented surface the engine uses (`LLM(**kwargs)`,
`LLM.chat(messages, params, add_generation_prompt=, continue_final_message=)`,
`LLM.get_tokenizer()`, `SamplingParams`, outputs with `prompt_token_ids`/`prompt_logprobs`).
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap

import pytest

from selection.engines import EngineError, assistant, load_engine, user
from tests.helpers.tiny_vlm import make_images

FAKE_VLLM = textwrap.dedent(
    '''
    """Stand-in for vllm: whitespace tokens, log p(token) = -0.25 * len(token)."""
    from types import SimpleNamespace

    CREATED = []


    class SamplingParams:
        def __init__(self, **kw):
            self.__dict__.update(kw)


    class Logprob:
        def __init__(self, logprob):
            self.logprob = logprob
            self.rank = 1


    class _Tok:
        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [hash(w) % 1000 for w in text.split()]}


    def _words(messages, add_generation_prompt):
        words = []
        for m in messages:
            words.append("<" + m["role"] + ">")
            content = m["content"]
            if isinstance(content, str):
                words += content.split()
            else:
                for p in content:
                    words += p["text"].split() if p["type"] == "text" else ["<img>"]
        if add_generation_prompt:
            words.append("<assistant>")
        return words


    class LLM:
        def __init__(self, **kwargs):
            self.kwargs = kwargs
            self.calls = []
            CREATED.append(self)

        def get_tokenizer(self):
            return _Tok()

        def chat(self, messages, sampling_params=None, use_tqdm=True,
                 add_generation_prompt=True, continue_final_message=False, **kw):
            self.calls.append(dict(messages=messages, params=sampling_params,
                                   add_generation_prompt=add_generation_prompt,
                                   continue_final_message=continue_final_message))
            outs = []
            for conv in messages:
                words = _words(conv, add_generation_prompt)
                ids = [hash(w) % 1000 for w in words]
                lps = None
                if getattr(sampling_params, "prompt_logprobs", None) is not None:
                    lps = [None] + [{i: Logprob(-0.25 * len(w))} for i, w in zip(ids[1:], words[1:])]
                text = " answer to " + conv[-1]["content"][-1]["text"] if not isinstance(
                    conv[-1]["content"], str) else " answer to " + conv[-1]["content"]
                outs.append(SimpleNamespace(prompt_token_ids=ids, prompt_logprobs=lps,
                                            outputs=[SimpleNamespace(text=text)]))
            return outs
    '''
)


@pytest.fixture
def fake_vllm(tmp_path, monkeypatch):
    pkg = tmp_path / "fakevllm" / "vllm"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(FAKE_VLLM)
    monkeypatch.syspath_prepend(str(pkg.parent))
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    importlib.invalidate_caches()
    yield
    sys.modules.pop("vllm", None)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")
def test_missing_vllm_names_the_gpu_extra():
    with pytest.raises(EngineError, match=r"pip install 'thresher\[gpu\]'"):
        load_engine("vllm", "Qwen/Qwen2.5-VL-7B-Instruct")


def test_llm_is_built_with_two_images_and_prefix_caching(fake_vllm):
    eng = load_engine("vllm", "some/model", max_model_len=4096)
    kwargs = eng.llm.kwargs
    assert kwargs["model"] == "some/model"
    assert kwargs["limit_mm_per_prompt"] == {"image": 2}
    assert kwargs["enable_prefix_caching"] is True
    assert kwargs["max_model_len"] == 4096


def test_generate_sends_image_parts_and_greedy_params(fake_vllm, tmp_path):
    imgs = make_images(tmp_path, 3)
    eng = load_engine("vllm", "m")
    out = eng.generate([(user("compare", imgs[0], imgs[1]),), (user("hi"),)], max_new_tokens=9)
    assert out == ["answer to compare", "answer to hi"]
    call = eng.llm.calls[0]
    assert call["params"].temperature == 0.0 and call["params"].max_tokens == 9
    parts = call["messages"][0][0]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]
    assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    with pytest.raises(
        EngineError,
        match="3 images but the vllm engine allows 2; raise it with --engine-opt limit_images=3",
    ):
        eng.generate([(user("three", *imgs),)])


def test_answer_logprobs_sum_the_answer_tokens_only(fake_vllm):
    eng = load_engine("vllm", "m")
    got = eng.answer_logprobs(
        [(user("q"),), (user("x"), assistant("y"), user("z"))], ["big cat", "a"]
    )
    assert got == [(-0.25 * 3 + -0.25 * 3, 2), (-0.25, 1)]
    call = eng.llm.calls[-1]
    assert call["continue_final_message"] and not call["add_generation_prompt"]
    assert call["params"].prompt_logprobs == 0
    assert call["messages"][0][-1] == {"role": "assistant", "content": "big cat"}


def test_image_limit_comes_from_the_data(fake_vllm):
    """One-shot probes of 3-image samples need 6 images per prompt; vLLM is told so at load."""
    import logging

    import pyarrow as pa

    from selection.answering import EngineAndJudge
    from selection.clipper.config import ClipperConfig
    from selection.clipper.zeroshot import Resources

    class Ctx:
        log = logging.getLogger("test")

        def input(self):
            return pa.table({"images": [["a.png"], ["b.png", "c.png", "d.png"], []]})

    clipper = Resources(ClipperConfig(model="m", engine="vllm"))
    assert clipper.engine(Ctx()).llm.kwargs["limit_mm_per_prompt"] == {"image": 6}
    evaluate = EngineAndJudge(ClipperConfig(model="m", engine="vllm"))
    assert evaluate.engine(Ctx()).llm.kwargs["limit_mm_per_prompt"] == {"image": 3}
    pinned = Resources(ClipperConfig(model="m", engine="vllm", engine_opts={"limit_images": 1}))
    assert pinned.engine(Ctx()).llm.kwargs["limit_mm_per_prompt"] == {"image": 1}
