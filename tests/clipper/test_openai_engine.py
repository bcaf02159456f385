"""The OpenAI-compatible engine against a real HTTP server on 127.0.0.1, with injected faults."""

from __future__ import annotations

import base64
import logging
import time
from pathlib import Path

import pytest

from selection.engines import EngineError, NotSupported, assistant, load_engine, user
from tests.helpers.chat_server import ChatServer, token_logprob
from tests.helpers.tiny_vlm import make_images

KEY = "sk-test-9f8e7d6c5b4a-do-not-leak"


@pytest.fixture
def images(tmp_path):
    return make_images(tmp_path / "imgs", 2)


def _engine(srv, **opts):
    opts = {"base_url": srv.base_url, "backoff_s": 0.01, "timeout_s": 2.0, **opts}
    return load_engine("openai", "served-model", **opts)


def test_generate_answers_in_order_with_images_as_data_urls(images):
    with ChatServer({"What is it?": "a square", "Compare": "the second"}) as srv:
        eng = _engine(srv)
        reqs = [
            (user("What is it?", images[0]),),
            (user("Compare", images[0], images[1]),),
            (user("no image"),),
        ]
        assert eng.generate(reqs, max_new_tokens=7) == ["a square", "the second", "echo: no image"]
    # Requests run concurrently, so arrival order is free; text-only content is a plain string.
    bodies = {
        b["messages"][-1]["content"][-1]["text"]: b
        for b in srv.requests
        if isinstance(b["messages"][-1]["content"], list)
    }
    assert set(bodies) == {"What is it?", "Compare"}
    parts = bodies["Compare"]["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]  # images first
    url = parts[1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == Path(images[1]).read_bytes()
    for body in srv.requests:
        assert body["temperature"] == 0 and body["max_tokens"] == 7
        assert body["model"] == "served-model"


def test_retries_429_500_and_timeouts_then_succeeds():
    with ChatServer() as srv:
        srv.fail_next(429, 500, ("delay", 1.0), 503)
        eng = _engine(srv, timeout_s=0.3, concurrency=1)
        out = eng.generate([(user(f"q{i}"),) for i in range(3)])
    assert out == ["echo: q0", "echo: q1", "echo: q2"]
    assert eng.retries == 4 and eng.calls == 7


def test_retry_after_is_honoured():
    with ChatServer() as srv:
        srv.fail_next(("429", 0.4))
        eng = _engine(srv, concurrency=1)
        started = time.monotonic()
        assert eng.generate([(user("hi"),)]) == ["echo: hi"]
        assert time.monotonic() - started >= 0.4


def test_gives_up_after_n_tries_naming_url_and_status():
    with ChatServer() as srv:
        srv.fail_next(*[500] * 3)
        eng = _engine(srv, max_retries=3)
        with pytest.raises(EngineError) as err:
            eng.generate([(user("hi"),)])
    assert srv.base_url + "/chat/completions" in str(err.value)
    assert "failed 3 times" in str(err.value) and "HTTP 500" in str(err.value)


def test_client_errors_are_not_retried():
    with ChatServer() as srv:
        srv.fail_next(404)
        eng = _engine(srv)
        with pytest.raises(EngineError, match="HTTP 404"):
            eng.generate([(user("hi"),)])
        assert len(srv.requests) == 1


def test_unreachable_server_is_a_clear_error():
    eng = load_engine("openai", "m", base_url="http://127.0.0.1:9/v1", max_retries=2, backoff_s=0)
    with pytest.raises(EngineError, match=r"127.0.0.1:9/v1/chat/completions failed 2 times"):
        eng.generate([(user("hi"),)])


def test_concurrency_limit_is_respected():
    with ChatServer(delay_s=0.1) as srv:
        eng = _engine(srv, concurrency=3)
        started = time.monotonic()
        out = eng.generate([(user(f"q{i}"),) for i in range(12)])
        elapsed = time.monotonic() - started
    assert out == [f"echo: q{i}" for i in range(12)]
    assert srv.max_in_flight == 3  # reached, never exceeded
    assert elapsed >= 0.4 - 0.05  # 12 requests, 3 at a time, 0.1 s each


def test_api_key_is_sent_but_never_logged_or_written(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("MY_PROVIDER_KEY", KEY)
    log_path = tmp_path / "run" / "engine.jsonl"
    log_path.parent.mkdir()
    caplog.set_level(logging.DEBUG)
    with ChatServer() as srv:
        srv.fail_next(429, 500)
        eng = _engine(srv, api_key_env="MY_PROVIDER_KEY", log_path=log_path, max_retries=3)
        assert eng.generate([(user("a"),)]) == ["echo: a"]
        srv.fail_next(500, 500, 500)
        with pytest.raises(EngineError) as err:
            eng.generate([(user("b"),)])
    assert srv.headers[0]["Authorization"] == f"Bearer {KEY}"
    assert log_path.read_text().count("\n") == 6  # the run log got written ...
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(KEY not in p.read_text(errors="ignore") for p in files)  # ... without the key
    assert KEY not in caplog.text
    assert KEY not in str(err.value) and KEY not in repr(eng) and KEY not in str(vars(eng))


def test_no_key_means_no_authorization_header(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with ChatServer() as srv:
        _engine(srv).generate([(user("a"),)])
    assert "Authorization" not in srv.headers[0]


def test_answer_logprobs_via_prompt_logprobs(images):
    with ChatServer() as srv:
        eng = _engine(srv)
        reqs = [(user("q one", images[0]),), (user("x"), assistant("y"), user("z"))]
        got = eng.answer_logprobs(reqs, ["two words", "three little words"])
    assert got[0] == pytest.approx((token_logprob("two") + token_logprob("words"), 2))
    assert got[1][1] == 3
    assert got[1][0] == pytest.approx(sum(token_logprob(w) for w in ["three", "little", "words"]))
    scored = [b for b in srv.requests if b.get("prompt_logprobs") is not None]
    assert len(scored) == 2
    assert all(b["continue_final_message"] and not b["add_generation_prompt"] for b in scored)


def test_answer_logprobs_unsupported_server_says_so():
    with ChatServer(prompt_logprobs=False) as srv:
        eng = _engine(srv)
        with pytest.raises(NotSupported, match="not supported by this engine"):
            eng.answer_logprobs([(user("q"),)], ["a"])


def test_works_inside_a_running_event_loop():
    import asyncio

    async def main():
        with ChatServer() as srv:
            return _engine(srv).generate([(user("loop"),)])

    assert asyncio.run(main()) == ["echo: loop"]


def test_retry_after_as_an_http_date_is_honoured():
    from email.utils import formatdate

    from selection.engines.openai_engine import retry_after_seconds

    assert retry_after_seconds("Wed, 21 Oct 2026 07:28:30 GMT", now=1792567680.0) == 30.0
    assert retry_after_seconds("Wed, 21 Oct 2026 07:27:00 GMT", now=1792567680.0) == 0.0
    assert retry_after_seconds("2.5") == 2.5 and retry_after_seconds("soon") is None
    with ChatServer() as srv:
        # HTTP-dates have whole seconds: 2 s ahead means a wait of more than 1 s
        srv.fail_next(("429", formatdate(time.time() + 2, usegmt=True)))
        eng = _engine(srv, concurrency=1)
        started = time.monotonic()
        assert eng.generate([(user("hi"),)]) == ["echo: hi"]
        assert time.monotonic() - started >= 0.9


def test_images_above_the_pixel_budget_are_downsized_before_inlining(tmp_path):
    import io

    from PIL import Image

    big, small = tmp_path / "big.jpg", tmp_path / "small.png"
    Image.new("RGB", (3000, 2000), (200, 30, 30)).save(big, quality=95)
    Image.new("RGB", (64, 48), (30, 30, 200)).save(small)
    with ChatServer() as srv:
        eng = _engine(srv, max_image_pixels=1_000_000)
        eng.generate([(user("look", str(big), str(small)),)])
        parts = srv.requests[0]["messages"][0]["content"]
        unlimited = _engine(srv, max_image_pixels=0)
        unlimited.generate([(user("again", str(big)),)])
        raw = srv.requests[1]["messages"][0]["content"][0]["image_url"]["url"]
    urls = [p["image_url"]["url"] for p in parts[:2]]
    assert urls[0].startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(urls[0].split(",", 1)[1]))) as im:
        w, h = im.size
    assert w * h <= 1_000_000 and abs(w / h - 1.5) < 0.01 and w > 1000
    assert base64.b64decode(urls[1].split(",", 1)[1]) == small.read_bytes()  # fits: untouched
    assert base64.b64decode(raw.split(",", 1)[1]) == big.read_bytes()  # 0 = never downsize
