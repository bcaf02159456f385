"""The one interface every inference engine (transformers, OpenAI-compatible HTTP, vLLM) speaks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from store.errors import ThresherError
from store.redact import redact


@dataclass(frozen=True)
class Turn:
    """One chat turn; its images are shown before its text."""

    role: str  # "user" | "assistant" | "system"
    text: str
    images: tuple[str, ...] = ()  # image file paths


# A request is the whole conversation so far; the last turn is the user's question.
ChatRequest = tuple[Turn, ...]


class EngineError(ThresherError):
    """An engine could not answer (server down, model missing, feature unsupported).

    Its text is redacted on construction: a server that echoes the API key in an error body
    cannot get it into a log, status.json or the terminal through us.
    """

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(redact(message), *args)


class NotSupported(EngineError):
    """The engine cannot do what was asked (e.g. answer log-probs on a chat-only server)."""


@runtime_checkable
class Engine(Protocol):
    """Greedy chat generation plus teacher-forced answer log-likelihoods."""

    name: str
    model_id: str

    def generate(self, requests: Sequence[ChatRequest], *, max_new_tokens: int = 32) -> list[str]:
        """Greedy answers, one per request, in order."""
        ...

    def answer_logprobs(
        self, requests: Sequence[ChatRequest], answers: Sequence[str]
    ) -> list[tuple[float, int]]:
        """(sum of log p over the answer tokens only, number of answer tokens), teacher-forced."""
        ...

    def close(self) -> None: ...


def user(text: str, *images: str) -> Turn:
    return Turn("user", text, tuple(images))


def assistant(text: str) -> Turn:
    return Turn("assistant", text)


def check_request(req: ChatRequest, where: str = "") -> None:
    """Reject malformed requests early with an error that names the request."""
    if not req:
        raise EngineError(f"empty chat request{where}: it needs at least one user turn")
    for turn in req:
        if turn.role not in ("user", "assistant", "system"):
            raise EngineError(
                f"chat request{where} has a turn with role {turn.role!r}; "
                "use 'user', 'assistant' or 'system'"
            )
    if req[-1].role != "user":
        raise EngineError(f"chat request{where} must end with a user turn (the question)")


def perplexity(logprob_sum: float, n_tokens: int) -> float:
    """exp(-mean log p) of an answer; inf when it has no tokens."""
    import math

    return math.exp(-logprob_sum / n_tokens) if n_tokens > 0 else math.inf
