"""A real OpenAI-compatible chat-completions server on 127.0.0.1 for tests, with injectable faults.

It answers deterministically from the last user text (a scripted table, else an echo), records
every request, tracks how many requests were in flight at once, and can fail the next calls
with 429 (with Retry-After), 500, or a delay longer than the client's timeout. Its vLLM-style
`prompt_logprobs` answer scores whitespace "tokens" so tests can check log-prob arithmetic.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def last_user_text(messages: list[dict]) -> str:
    for msg in reversed(messages):
        if msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return ""


def token_logprob(token: str) -> float:
    """The fake model's log p of a whitespace token: simple and checkable by hand."""
    return -0.5 * len(token)


def render(messages: list[dict]) -> list[str]:
    """The fake chat template: every turn's text, whitespace-split."""
    words: list[str] = []
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, str):
            words += [f"<{msg['role']}>", *content.split()]
        else:
            words.append(f"<{msg['role']}>")
            for part in content:
                if part.get("type") == "text":
                    words += part["text"].split()
                else:
                    words.append("<img>")
    return words


class ChatServer:
    """Start with `with ChatServer(answers) as srv:`; `srv.base_url` ends in /v1."""

    def __init__(
        self,
        answers: dict[str, str] | None = None,
        *,
        delay_s: float = 0.0,
        prompt_logprobs: bool = True,
    ) -> None:
        self.answers = dict(answers or {})
        self.delay_s = delay_s
        self.prompt_logprobs = prompt_logprobs
        self.faults: deque = deque()  # ("status", code, retry_after) | ("delay", seconds)
        self.requests: list[dict] = []  # bodies, in arrival order
        self.headers: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # -- fault injection -------------------------------------------------------------

    def fail_next(self, *faults) -> None:
        """Queue faults for the next calls: 429, 500, ("429", retry_after), ("delay", s)."""
        for f in faults:
            if isinstance(f, int):
                self.faults.append(("status", f, None))
            elif f[0] == "delay":
                self.faults.append(("delay", float(f[1]), None))
            else:
                self.faults.append(("status", int(f[0]), f[1]))

    # -- lifecycle -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ChatServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                server._handle(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    # -- protocol --------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = json.loads(h.rfile.read(length) or b"{}")
        with self._lock:
            self.requests.append(body)
            self.headers.append(dict(h.headers))
            fault = self.faults.popleft() if self.faults else None
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            code, payload, extra = self._answer(h.path, body, fault)
        finally:
            # Done before the reply leaves: a client that got it may send its next request at
            # once, and counting that one before this one ends would report a limit exceeded.
            with self._lock:
                self.in_flight -= 1
        self._send(h, code, payload, extra)

    def _answer(self, path: str, body: dict, fault) -> tuple[int, dict, dict]:
        if path.rstrip("/") != "/v1/chat/completions":
            return 404, {"error": {"message": f"no route {path}"}}, {}
        if fault and fault[0] == "status":
            extra = {"Retry-After": str(fault[2])} if fault[2] is not None else {}
            return fault[1], {"error": {"message": "injected"}}, extra
        delay = self.delay_s + (fault[1] if fault and fault[0] == "delay" else 0.0)
        if delay:
            time.sleep(delay)
        if body.get("prompt_logprobs") is not None and not self.prompt_logprobs:
            return 400, {"error": {"message": "extra field prompt_logprobs not permitted"}}, {}
        return 200, self._completion(body), {}

    def _completion(self, body: dict) -> dict:
        messages = body.get("messages", [])
        text = last_user_text(messages)
        answer = self.answers.get(text, f"echo: {text}")
        words = render(messages)
        out = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "model": body.get("model", ""),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": len(words), "completion_tokens": len(answer.split())},
        }
        if body.get("prompt_logprobs") is not None:
            # A final assistant message is continued (its words are the tail); otherwise
            # the generation prompt is appended as vLLM would.
            if messages[-1]["role"] == "user":
                words = [*words, "<assistant>"]
            out["usage"]["prompt_tokens"] = len(words)
            out["prompt_logprobs"] = [None] + [
                {str(1000 + i): {"logprob": token_logprob(w), "rank": 1, "decoded_token": w}}
                for i, w in enumerate(words[1:])
            ]
        elif body.get("add_generation_prompt", True):
            out["usage"]["prompt_tokens"] = len(words) + 1
        return out

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, code: int, payload: dict, headers=None) -> None:
        data = json.dumps(payload).encode()
        try:
            h.send_response(code)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and went away: that is the point of a delay fault
