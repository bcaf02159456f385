"""Inference with Hugging Face transformers: any image-text-to-text model, CPU or GPU, batched."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from selection.engines.base import ChatRequest, EngineError, check_request
from store.errors import ThresherError

log = logging.getLogger(__name__)


def _messages(req: ChatRequest) -> list[dict]:
    """Chat-template messages; a turn's images come before its text, as content parts."""
    out = []
    for turn in req:
        content: list[dict] = [{"type": "image"} for _ in turn.images]
        content.append({"type": "text", "text": turn.text})
        out.append({"role": turn.role, "content": content})
    return out


def _load_images(req: ChatRequest) -> list:
    from PIL import Image

    images = []
    for turn in req:
        for path in turn.images:
            try:
                with Image.open(path) as im:
                    images.append(im.convert("RGB"))
            except (OSError, ValueError) as exc:
                raise EngineError(
                    f"cannot read image {path}: {exc}; fix or re-ingest the sample"
                ) from exc
    return images


class TransformersEngine:
    """`AutoModelForImageTextToText` + `AutoProcessor`, greedy generation with left padding."""

    name = "transformers"

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 8,
        trust_remote_code: bool = False,
        adapter: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.model_id = str(model)
        self.batch_size = max(1, int(batch_size))
        self.model: Any = None  # a PreTrainedModel, or a PeftModel around one
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = _dtype(dtype, self.device)
        from selection.models.resolve import resolve_model

        try:
            source = resolve_model(self.model_id)  # offline + not cached: fails here, at once
        except ThresherError as exc:
            raise EngineError(f"cannot load model {self.model_id!r}: {exc}") from None
        try:
            self.processor = AutoProcessor.from_pretrained(
                source, trust_remote_code=trust_remote_code
            )
            self.model = AutoModelForImageTextToText.from_pretrained(
                source, dtype=torch_dtype, trust_remote_code=trust_remote_code
            )
        except (OSError, ValueError) as exc:
            raise EngineError(
                f"cannot load model {self.model_id!r} with transformers: {exc}. "
                "Pass --model a local folder with config.json, or a hub name (downloaded unless "
                "offline; `thresher models` lists the cached ones)"
            ) from exc
        if adapter:
            # A LoRA adapter from `thresher train` (or any peft adapter) on top of the base model.
            from peft import PeftModel

            try:
                self.model = PeftModel.from_pretrained(self.model, str(adapter))
            except (OSError, ValueError) as exc:
                raise EngineError(f"cannot load adapter {adapter!r}: {exc}") from exc
        self.model.to(self.device).eval()
        tok = self.processor.tokenizer
        tok.padding_side = "left"  # generation appends on the right
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        # A plain forward numbers positions 0..width-1, so a left-padded row would start at the
        # pad count: perplexities would then depend on the batch they were scored in. generate()
        # derives positions from the mask; answer_logprobs does the same. Qwen2-VL's M-RoPE
        # (get_rope_index) already reads the mask and takes no 2-D position_ids.
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        inner = getattr(base, "model", base)
        self._positions_from_mask = not hasattr(inner, "get_rope_index")
        self.demo_label = getattr(self.model.config, "thresher_demo", None)
        if self.demo_label:
            log.warning("%s is the %s", self.model_id, self.demo_label)

    # -- prompts -------------------------------------------------------------------------

    def _encode(self, requests: Sequence[ChatRequest], answers: Sequence[str] | None = None):
        texts, images = [], []
        for i, req in enumerate(requests):
            check_request(req, f" #{i}")
            prompt = self.processor.apply_chat_template(
                _messages(req), add_generation_prompt=True, tokenize=False
            )
            if answers is not None:
                prompt += answers[i]
            texts.append(prompt)
            images.append(_load_images(req))
        kwargs = {"text": texts, "return_tensors": "pt", "padding": True}
        if any(images):
            if not all(images):
                raise EngineError(
                    "a batch mixes requests with and without images; "
                    "group them (the engine's generate() does so for you)"
                )
            kwargs["images"] = images
        # The chat template already wrote BOS/special tokens; do not add them twice.
        return self.processor(**kwargs, add_special_tokens=False).to(self.device)

    def _batches(self, requests: Sequence[ChatRequest]):
        """Index batches, each all-with-images or all-without (processors reject mixtures)."""
        with_img = [i for i, r in enumerate(requests) if any(t.images for t in r)]
        without = [i for i, r in enumerate(requests) if not any(t.images for t in r)]
        for group in (with_img, without):
            for s in range(0, len(group), self.batch_size):
                yield group[s : s + self.batch_size]

    # -- Engine --------------------------------------------------------------------------

    def generate(self, requests: Sequence[ChatRequest], *, max_new_tokens: int = 32) -> list[str]:
        import torch

        out: list[str | None] = [None] * len(requests)
        tok = self.processor.tokenizer
        for idx in self._batches(requests):
            inputs = self._encode([requests[i] for i in idx])
            with torch.inference_mode():
                gen = self.model.generate(
                    **inputs,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                    pad_token_id=tok.pad_token_id,
                )
            new = gen[:, inputs["input_ids"].shape[1] :]
            texts = tok.batch_decode(new, skip_special_tokens=True)
            for i, text in zip(idx, texts, strict=True):
                out[i] = text.strip()
        return [o or "" for o in out]

    def answer_logprobs(
        self, requests: Sequence[ChatRequest], answers: Sequence[str]
    ) -> list[tuple[float, int]]:
        """One forward over prompt+answer; only the answer's tokens are scored.

        The answer is tokenized on its own and appended to the prompt's ids, so its token
        count does not depend on how BPE would merge across the prompt/answer boundary.
        """
        import torch

        if len(requests) != len(answers):
            raise EngineError(f"{len(requests)} requests but {len(answers)} answers")
        tok = self.processor.tokenizer
        out: list[tuple[float, int]] = [(0.0, 0)] * len(requests)
        for idx in self._batches(requests):
            inputs = self._encode([requests[i] for i in idx])
            ids, mask = inputs["input_ids"], inputs["attention_mask"]
            ans_ids = [tok(answers[i], add_special_tokens=False)["input_ids"] for i in idx]
            keep = [mask[r].bool() for r in range(len(idx))]
            lens = [int(k.sum()) + len(a) for k, a in zip(keep, ans_ids, strict=True)]
            width = max(lens)
            # Rebuild every per-token tensor (ids, mask, mm_token_type_ids, ...) left-padded.
            for key, value in list(inputs.items()):
                if not (hasattr(value, "shape") and tuple(value.shape) == tuple(ids.shape)):
                    continue
                if key == "input_ids":
                    fill, tail = tok.pad_token_id, ans_ids
                elif key == "attention_mask":
                    fill, tail = 0, [[1] * len(a) for a in ans_ids]
                else:
                    fill, tail = 0, [[0] * len(a) for a in ans_ids]
                rows = [
                    [fill] * (width - lens[r]) + value[r][keep[r]].tolist() + tail[r]
                    for r in range(len(idx))
                ]
                inputs[key] = torch.tensor(rows, dtype=value.dtype, device=value.device)
            new_ids = inputs["input_ids"]
            if self._positions_from_mask:
                inputs["position_ids"] = positions_from_mask(inputs["attention_mask"])
            with torch.inference_mode():
                logits = self.model(**inputs).logits
            for r, i in enumerate(idx):
                n = len(ans_ids[r])
                if n == 0:
                    continue
                # the token at position j is predicted by the logits at j - 1
                lp = torch.log_softmax(logits[r, width - n - 1 : width - 1].float(), dim=-1)
                target = new_ids[r, width - n :].to(lp.device)
                out[i] = (float(lp.gather(-1, target.unsqueeze(-1)).sum()), n)
        return out

    def close(self) -> None:
        import gc

        self.model = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass


def positions_from_mask(mask):
    """Position ids that start at 0 on each row's first real token (left padding), as
    transformers' generate() computes them; pads get 1 (they are masked anyway)."""
    pos = mask.long().cumsum(-1) - 1
    pos.masked_fill_(mask == 0, 1)
    return pos


def _dtype(dtype: str | None, device: str):
    import torch

    if dtype in (None, "auto"):
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
            dtype
        ]
    except KeyError:
        raise EngineError(
            f"unknown dtype {dtype!r}; use float32, bfloat16, float16 or auto"
        ) from None
