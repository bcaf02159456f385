"""The one redaction every error text passes before it is logged, stored or shown: no API keys.

A server may echo the request's `Authorization` header or the key itself in an error body (a
401 that repeats what it was sent). Engines register the keys they send (`add_secret`); besides
those, the values of environment variables that look like keys (`*API_KEY*`, `*TOKEN*`,
`*SECRET*`, `*PASSWORD*`), `Authorization`/`api-key` header values, `Bearer ...` tokens and
the password of a URL are replaced by `[redacted]`.
"""

from __future__ import annotations

import os
import re

MASK = "[redacted]"
_MIN_SECRET = 6  # shorter values would mask ordinary words
_SECRET_ENV = re.compile(r"API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD", re.IGNORECASE)
_NOT_SECRET_ENV = re.compile(r"(_PATH|_FILE|_DIR|_ENV|PARALLELISM)$", re.IGNORECASE)
_secrets: set[str] = set()

_PATTERNS = (
    # Header lines or JSON/dict entries: Authorization: Bearer x, "api-key": "x", x-api-key=x
    re.compile(
        r"""(?i)((?:proxy-)?authorization|x-api-key|api[-_]?key|access[-_]?token)"""
        r"""(["']?\s*[:=]\s*["']?)(?:(?:bearer|basic|token)\s+)?[^\s"',;}\]]+"""
    ),
    re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/=-]{4,}"),
    re.compile(r"(://[^/\s:@]+)(:)[^/\s@]+(?=@)"),  # scheme://user:PASSWORD@host
)


def add_secret(value: str | None) -> None:
    """Remember a value that must never be written out (an API key an engine sends)."""
    if value and len(value) >= _MIN_SECRET:
        _secrets.add(value)


def _known_secrets() -> list[str]:
    found = set(_secrets)
    for name, value in os.environ.items():
        if (
            len(value) >= _MIN_SECRET
            and _SECRET_ENV.search(name)
            and not _NOT_SECRET_ENV.search(name)
        ):
            found.add(value)
    return sorted(found, key=len, reverse=True)  # a key that contains another goes first


def redact(text: object) -> str:
    """`text` as a string with every secret we know of, and every credential-shaped value, masked."""
    out = str(text)
    for secret in _known_secrets():
        if secret in out:
            out = out.replace(secret, MASK)
    for pattern in _PATTERNS:
        out = pattern.sub(lambda m: m.group(1) + m.group(2) + MASK, out)
    return out
