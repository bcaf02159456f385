"""Inference engines behind one interface; `load_engine(kind, model, **opts)` picks one."""

from __future__ import annotations

from selection.engines.base import (
    ChatRequest,
    Engine,
    EngineError,
    NotSupported,
    Turn,
    assistant,
    perplexity,
    user,
)

ENGINE_KINDS = ("transformers", "openai", "vllm")


def load_engine(kind: str, model: str, **opts) -> Engine:
    """Build the engine `kind` for `model`; options go to that engine's constructor.

    transformers: device, dtype, batch_size, trust_remote_code, adapter (a peft LoRA folder)
    openai: base_url, api_key_env, concurrency, timeout_s, max_retries, backoff_s, log_path
    vllm: dtype, max_model_len, gpu_memory_utilization, tensor_parallel_size, limit_images, ...
    """
    if kind == "transformers":
        from selection.engines.transformers_engine import TransformersEngine

        return TransformersEngine(model, **opts)
    if kind == "openai":
        from selection.engines.openai_engine import OpenAIEngine

        return OpenAIEngine(model, **opts)
    if kind == "vllm":
        from selection.engines.vllm_engine import VLLMEngine

        return VLLMEngine(model, **opts)
    raise EngineError(f"unknown engine {kind!r}; choose one of {', '.join(ENGINE_KINDS)}")


__all__ = [
    "ENGINE_KINDS",
    "ChatRequest",
    "Engine",
    "EngineError",
    "NotSupported",
    "Turn",
    "assistant",
    "load_engine",
    "perplexity",
    "user",
]
