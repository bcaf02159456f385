"""Inference against any OpenAI-compatible chat-completions server (vLLM serve, SGLang, LMDeploy,
a hosted API) over httpx: async with a concurrency limit, retries with backoff, images inline."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import mimetypes
import os
import random
import threading
import time
from collections.abc import Coroutine, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from selection.engines.base import ChatRequest, EngineError, NotSupported, check_request
from store.redact import add_secret, redact

log = logging.getLogger(__name__)
_T = TypeVar("_T")

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


# 2048 x 2048: what hosted APIs accept at high detail; a server resizes to its model's own budget
# anyway, so sending more only costs bandwidth and request size.
MAX_IMAGE_PIXELS = 2048 * 2048


@lru_cache(maxsize=256)
def image_data_url(path: str, max_pixels: int | None = None) -> str:
    """An image file as a base64 data URL (cached: ICL demonstrations repeat their image).

    An image above `max_pixels` is downsized (aspect ratio kept) and re-encoded before inlining."""
    mime = mimetypes.guess_type(path)[0] or "image/png"
    try:
        data = Path(path).read_bytes()
        if max_pixels:
            data, mime = _downsized(data, mime, max_pixels)
    except OSError as exc:
        raise EngineError(f"cannot read image {path}: {exc}; fix or re-ingest the sample") from exc
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _downsized(data: bytes, mime: str, max_pixels: int) -> tuple[bytes, str]:
    """The image scaled to at most `max_pixels` pixels, or the bytes as they are when it fits."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
        if w * h <= max_pixels:
            return data, mime
        scale = (max_pixels / (w * h)) ** 0.5
        size = (max(1, int(w * scale)), max(1, int(h * scale)))
        small = im.convert("RGB" if im.mode not in ("RGB", "L") else im.mode).resize(
            size, Image.Resampling.BICUBIC
        )
    buf = io.BytesIO()
    if mime == "image/jpeg":
        small.save(buf, format="JPEG", quality=90)
    else:
        small.save(buf, format="PNG")
        mime = "image/png"
    return buf.getvalue(), mime


def to_messages(req: ChatRequest, max_pixels: int | None = None) -> list[dict[str, Any]]:
    """OpenAI chat messages; a turn's images go first as image_url parts, then its text."""
    out: list[dict[str, Any]] = []
    for turn in req:
        if not turn.images:
            out.append({"role": turn.role, "content": turn.text})
            continue
        parts: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": image_data_url(p, max_pixels)}}
            for p in turn.images
        ]
        parts.append({"type": "text", "text": turn.text})
        out.append({"role": turn.role, "content": parts})
    return out


def retry_after_seconds(value: str, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for: delta-seconds ("120") or an HTTP-date
    ("Wed, 21 Oct 2026 07:28:00 GMT", RFC 9110); None when it is neither."""
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        import datetime as dt

        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion from sync code, even when a loop is already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class OpenAIEngine:
    """Chat completions over HTTP; the API key is read from an environment variable only."""

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 16,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        extra_body: dict | None = None,
        log_path: str | os.PathLike | None = None,
        max_image_pixels: int | None = MAX_IMAGE_PIXELS,
    ) -> None:
        self.model_id = str(model)
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.api_key_env = api_key_env
        self.concurrency = max(1, int(concurrency))
        self.timeout_s = float(timeout_s)
        self.max_retries = max(1, int(max_retries))
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.extra_body = dict(extra_body or {})
        self.log_path = Path(log_path) if log_path else None
        self.max_image_pixels = int(max_image_pixels) if max_image_pixels else None  # 0 = never
        self.calls = 0
        self.retries = 0
        if not os.environ.get(api_key_env):
            log.info("no API key in $%s: sending requests without Authorization", api_key_env)

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIEngine(model={self.model_id!r}, base_url={self.base_url!r})"

    def _headers(self) -> dict[str, str]:
        # Read at call time and never stored on the object, so it cannot leak via vars()/pickle.
        key = os.environ.get(self.api_key_env)
        headers = {"Content-Type": "application/json"}
        if key:
            add_secret(key)  # whatever the server echoes back is masked before it is written
            headers["Authorization"] = f"Bearer {key}"
        return headers

    # -- HTTP with retries ------------------------------------------------------------

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        delay = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        delay *= 1 + random.random() * 0.25  # jitter: spread clients that failed together
        wait = retry_after_seconds(retry_after) if retry_after else None
        if wait is not None:
            delay = max(delay, min(wait, self.max_backoff_s))
        return delay

    async def _post(self, client, sem: asyncio.Semaphore, body: dict) -> dict:
        import httpx

        last = ""
        for attempt in range(self.max_retries):
            started = time.monotonic()
            async with sem:
                self.calls += 1
                try:
                    resp = await client.post(self.url, json=body, headers=self._headers())
                except httpx.TimeoutException:
                    status, last, retry_after = None, f"timed out after {self.timeout_s:g}s", None
                except httpx.TransportError as exc:
                    status, last, retry_after = None, redact(f"connection failed ({exc})"), None
                else:
                    status, retry_after = resp.status_code, resp.headers.get("Retry-After")
                    last = f"HTTP {status}"
            self._record(body, status, attempt, time.monotonic() - started)
            if status is not None and status < 300:
                try:
                    return resp.json()
                except json.JSONDecodeError as exc:
                    raise EngineError(f"{self.url} returned invalid JSON: {exc}") from exc
            if status is not None and status not in RETRY_STATUS:
                raise EngineError(
                    f"{self.url} refused the request with HTTP {status}: "
                    f"{_error_message(resp)}; check --model and the server's options"
                )
            if attempt + 1 < self.max_retries:
                self.retries += 1
                delay = self._delay(attempt, retry_after)
                log.info("%s: %s, retry %d in %.2fs", self.url, last, attempt + 1, delay)
                await asyncio.sleep(delay)
        raise EngineError(
            f"{self.url} failed {self.max_retries} times (last: {last}); "
            "check that the server is up, or lower the load with --engine-opt concurrency=N and "
            "allow slower answers with --engine-opt timeout_s=SECONDS"
        )

    def _record(self, body: dict, status: int | None, attempt: int, seconds: float) -> None:
        if self.log_path is None:
            return
        # Only what helps debugging: no message text, no headers (so never the key).
        line = {"t": time.time(), "url": self.url, "status": status, "attempt": attempt}
        line |= {"seconds": round(seconds, 4), "max_tokens": body.get("max_tokens")}
        with self.log_path.open("a") as fh:
            fh.write(json.dumps(line) + "\n")

    async def _post_all(self, bodies: list[dict]) -> list[dict]:
        import httpx

        sem = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(timeout=self.timeout_s, limits=limits) as client:
            return await asyncio.gather(*(self._post(client, sem, b) for b in bodies))

    def _body(self, req: ChatRequest, max_tokens: int, **extra) -> dict:
        body = {
            "model": self.model_id,
            "messages": to_messages(req, self.max_image_pixels),
            "temperature": 0,
            "max_tokens": max_tokens,
        }
        body |= self.extra_body
        body |= extra
        return body

    # -- Engine ------------------------------------------------------------------------

    def generate(self, requests: Sequence[ChatRequest], *, max_new_tokens: int = 32) -> list[str]:
        for i, req in enumerate(requests):
            check_request(req, f" #{i}")
        bodies = [self._body(r, max_new_tokens) for r in requests]
        out = []
        for i, resp in enumerate(_run(self._post_all(bodies))):
            try:
                out.append((resp["choices"][0]["message"].get("content") or "").strip())
            except (KeyError, IndexError, TypeError) as exc:
                raise EngineError(
                    f"{self.url} answered request #{i} without choices[0].message: {exc}"
                ) from exc
        return out

    def answer_logprobs(
        self, requests: Sequence[ChatRequest], answers: Sequence[str]
    ) -> list[tuple[float, int]]:
        """Prompt log-probs of the answer continued as the assistant's message (vLLM's
        `prompt_logprobs` + `continue_final_message` extensions); the answer's token count is
        the difference in prompt tokens with and without it."""
        if len(requests) != len(answers):
            raise EngineError(f"{len(requests)} requests but {len(answers)} answers")
        from selection.engines.base import Turn

        with_answer, without = [], []
        for i, (req, ans) in enumerate(zip(requests, answers, strict=True)):
            check_request(req, f" #{i}")
            full = (*req, Turn("assistant", ans))
            with_answer.append(
                self._body(
                    full,
                    1,
                    prompt_logprobs=0,
                    add_generation_prompt=False,
                    continue_final_message=True,
                )
            )
            without.append(self._body(req, 1, add_generation_prompt=True))
        try:
            responses = _run(self._post_all(with_answer + without))
        except EngineError as exc:
            if "HTTP 400" in str(exc) or "HTTP 422" in str(exc):
                raise NotSupported(
                    f"answer log-probs are not supported by this engine's server ({self.url}): "
                    "it rejected prompt_logprobs. Use a vLLM server, or --engine transformers"
                ) from exc
            raise
        n = len(requests)
        out = []
        for i in range(n):
            scored, plain = responses[i], responses[n + i]
            lps = scored.get("prompt_logprobs")
            if not lps:
                raise NotSupported(
                    f"answer log-probs are not supported by this engine's server ({self.url}): "
                    "its reply has no prompt_logprobs. Use a vLLM server, or --engine transformers"
                )
            k = int(scored["usage"]["prompt_tokens"]) - int(plain["usage"]["prompt_tokens"])
            k = max(0, min(k, len(lps) - 1))
            total = 0.0
            for entry in lps[len(lps) - k :]:
                # The scored prompt token is the first entry (vLLM lists it before the top-k).
                first = next(iter(entry.values()))
                total += float(first["logprob"] if isinstance(first, dict) else first)
            out.append((total, k))
        return out

    def close(self) -> None:
        image_data_url.cache_clear()


def _error_message(resp) -> str:
    try:
        err = resp.json().get("error")
        msg = err.get("message") if isinstance(err, dict) else err
        return str(msg or resp.text[:200])
    except (ValueError, AttributeError):
        return resp.text[:200]
