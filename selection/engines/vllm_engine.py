"""Offline vLLM inference (GPU): multi-modal chat, prefix caching, greedy, prompt log-probs.

Written against vLLM's documented `LLM` / `LLM.chat` / `SamplingParams` API; it cannot run on
the CPU-only development boxes, so it is exercised there only with a stand-in `vllm` module.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence

from selection.engines.base import ChatRequest, EngineError, Turn, check_request
from selection.engines.openai_engine import to_messages

log = logging.getLogger(__name__)

VLLM_MISSING = (
    "the vllm engine needs vLLM, which is not installed; install the gpu extra: "
    "pip install 'thresher[gpu]' (on a CUDA machine), or use --engine transformers|openai"
)


def require_vllm() -> None:
    if importlib.util.find_spec("vllm") is None:
        raise EngineError(VLLM_MISSING)


class VLLMEngine:
    """`vllm.LLM(...)` + `llm.chat(...)`; images travel as base64 data URLs in the messages."""

    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        limit_images: int = 2,  # CLIPPER / eval set it from the data (selection/answering.py)
        enable_prefix_caching: bool = True,
        dtype: str = "auto",
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        tensor_parallel_size: int = 1,
        seed: int = 0,
        trust_remote_code: bool = False,
        batch_size: int | None = None,  # accepted for CLI symmetry; vLLM batches by itself
        **llm_kwargs,
    ) -> None:
        require_vllm()
        import vllm  # optional: the gpu extra

        self.model_id = str(model)
        self.limit_images = int(limit_images)
        kwargs = dict(
            model=self.model_id,
            limit_mm_per_prompt={"image": int(limit_images)},
            enable_prefix_caching=enable_prefix_caching,  # ICL probes share a demo prefix
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size,
            seed=seed,
            trust_remote_code=trust_remote_code,
        )
        if max_model_len:
            kwargs["max_model_len"] = int(max_model_len)
        kwargs |= llm_kwargs
        try:
            self.llm = vllm.LLM(**kwargs)
        except (OSError, ValueError, RuntimeError) as exc:
            raise EngineError(f"vLLM could not load {self.model_id!r}: {exc}") from exc
        self._vllm = vllm

    def _check(self, requests: Sequence[ChatRequest]) -> None:
        for i, req in enumerate(requests):
            check_request(req, f" #{i}")
            n = sum(len(t.images) for t in req)
            if n > self.limit_images:
                raise EngineError(
                    f"request #{i} has {n} images but the vllm engine allows "
                    f"{self.limit_images}; raise it with --engine-opt limit_images={n}"
                )

    def generate(self, requests: Sequence[ChatRequest], *, max_new_tokens: int = 32) -> list[str]:
        self._check(requests)
        params = self._vllm.SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
        outs = self.llm.chat([to_messages(r) for r in requests], params, use_tqdm=False)
        return [o.outputs[0].text.strip() for o in outs]

    def answer_logprobs(
        self, requests: Sequence[ChatRequest], answers: Sequence[str]
    ) -> list[tuple[float, int]]:
        """Prompt log-probs of prompt+answer (answer continued as the assistant's message);
        the answer's tokens are the last len(tokenize(answer)) prompt tokens."""
        if len(requests) != len(answers):
            raise EngineError(f"{len(requests)} requests but {len(answers)} answers")
        self._check(requests)
        tok = self.llm.get_tokenizer()
        convs = [
            to_messages((*r, Turn("assistant", a))) for r, a in zip(requests, answers, strict=True)
        ]
        params = self._vllm.SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=0)
        outs = self.llm.chat(
            convs,
            params,
            use_tqdm=False,
            add_generation_prompt=False,
            continue_final_message=True,
        )
        result = []
        for out, ans in zip(outs, answers, strict=True):
            n = len(tok(ans, add_special_tokens=False)["input_ids"]) if ans else 0
            ids, lps = list(out.prompt_token_ids), list(out.prompt_logprobs or [])
            n = min(n, len(ids) - 1)
            total = 0.0
            for pos in range(len(ids) - n, len(ids)):
                entry = lps[pos] or {}
                lp = entry.get(ids[pos])
                if lp is None:
                    raise EngineError(f"vLLM returned no log-prob for prompt token {pos}")
                total += float(getattr(lp, "logprob", lp))
            result.append((total, n))
        return result

    def close(self) -> None:
        self.llm = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass
