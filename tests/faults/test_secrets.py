"""A server that echoes the API key in its error replies cannot get it onto disk or the screen.

The key sits in an environment variable whose name looks like nothing secret, so only the
engine's registration of the key it sends (and the header patterns) can mask it. After the run
fails, every file under the workspace and everything printed is searched for the key.
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from store.redact import MASK, redact
from tests.helpers.cli import thresher
from tests.helpers.datasets import make_demo_dataset


class EchoingServer:
    """Answers every chat call with `status`, repeating the request's Authorization header in
    the body (JSON for 401, plain text for 500) and in response headers, as broken proxies do."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.calls = 0

    def __enter__(self) -> str:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.calls += 1
                auth = self.headers.get("Authorization", "")
                key = auth.removeprefix("Bearer ")
                if outer.status == 401:
                    body = json.dumps(
                        {"error": {"message": f"Incorrect API key provided: {key}. You sent "
                                   f"Authorization: {auth}", "type": "invalid_request_error"}}
                    ).encode()  # fmt: skip
                else:
                    body = f"Internal Server Error: upstream refused key={key} headers={{'Authorization': '{auth}', 'api-key': '{key}'}}".encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Echo-Authorization", auth)
                self.send_header("WWW-Authenticate", f'Bearer realm="api", error="{key}"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.parametrize("status", [401, 500])
def test_echoed_key_never_reaches_disk_or_terminal(catalog, monkeypatch, capfd, status):
    key = "sk-" + secrets.token_hex(20)
    monkeypatch.setenv("THRESHER_TEST_CRED", key)  # a name the env-scan does not know
    make_demo_dataset(catalog, n=12, seed=3)
    ws = catalog.workspace
    with EchoingServer(status) as url:
        code = thresher(
            ws, "run", "clipper", "--dataset", "demo", "--engine", "openai", "--base-url", url,
            "--api-key-env", "THRESHER_TEST_CRED", "--model", "served", "--judge", "rule",
            "--engine-opt", "max_retries=2", "--engine-opt", "backoff_s=0.01", "--limit", "6",
        )  # fmt: skip
    out, err = capfd.readouterr()
    assert code not in (0, None)
    assert f"HTTP {status}" in (out + err)  # the run failed on the server's reply
    if status == 401:  # a refusal quotes the server's message: the key in it is masked
        assert f"Incorrect API key provided: {MASK}" in err
    assert key not in out and key not in err
    run_dirs = list(ws.runs_dir.iterdir())
    assert run_dirs and (run_dirs[0] / "job.log").exists()
    status_json = json.loads((run_dirs[0] / "status.json").read_text())
    assert status_json["status"] == "failed" and f"HTTP {status}" in status_json["error"]
    assert _files_containing(ws.root, key.encode()) == []
    assert _files_containing(ws.root, key[3:15].encode()) == []  # not even a fragment


def test_redact_masks_header_shapes_and_registered_keys(monkeypatch):
    from store import redact as mod

    monkeypatch.setattr(mod, "_secrets", set())
    mod.add_secret("abcdef123456")
    text = (
        "key abcdef123456; Authorization: Bearer zzz999; {'api-key': 'k-1'}; "
        '"x-api-key":"k-2"; https://user:hunter22@host/v1; bearer tok.en/1+2='
    )
    got = redact(text)
    for leaked in ("abcdef123456", "zzz999", "k-1", "k-2", "hunter22", "tok.en"):
        assert leaked not in got, (leaked, got)
    assert "https://user:[redacted]@host/v1" in got
    # Ordinary words and the names of options stay readable.
    plain = "a basic check; pass --api-key-env NAME; token counts 1234567"
    assert redact(plain) == plain
