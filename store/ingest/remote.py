"""`--fetch-remote`: download images named by http(s) URLs into the workspace's image store.

Off by default: a URL is flagged `remote_image` and never requested. Asked for, every distinct
URL is fetched once (a thread pool; a timeout and a size cap per image) and stored like an
embedded image (store/images.py); the sample's `images` then point at the stored file while
`images_raw` keeps the URL as written. A URL that fails (HTTP error, timeout, too large) stays
`remote_image`, and the report counts it.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from store.images import ImageStore

FETCHED_SCHEMES = r"^https?://"
MAX_BYTES = 64 << 20  # an "image" larger than this is not one
TIMEOUT_S = 30.0
WORKERS = 8


@dataclass
class Fetched:
    paths: dict[str, str] = field(default_factory=dict)  # url -> stored path
    failed: dict[str, str] = field(default_factory=dict)  # url -> why
    verdicts: dict[str, int] = field(default_factory=dict)  # stored path -> image check


def _download(url: str, timeout: float) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "thresher-ingest"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (http(s) only)
        data = resp.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ValueError(f"larger than {MAX_BYTES >> 20} MiB")
    return data


def fetch(
    norm: pa.Table, store: ImageStore, tried: Fetched | None = None, timeout: float = TIMEOUT_S
) -> Fetched:
    """Download every distinct http(s) image URL of `norm.images_raw` into `store`, but those
    `tried` already (an earlier chunk of the same ingest)."""
    flat = pc.list_flatten(norm.column("images_raw"))
    urls = pc.unique(pc.filter(flat, pc.match_substring_regex(flat, FETCHED_SCHEMES)))
    out = Fetched()

    def one(url: str) -> None:
        try:
            data = _download(url, timeout)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            out.failed[url] = str(getattr(exc, "reason", None) or exc)
            return
        [(path, verdict)] = store.submit([data])()
        out.paths[url] = path
        if verdict is not None:
            out.verdicts[path] = verdict

    todo = urls.to_pylist()
    if tried is not None:
        todo = [u for u in todo if u not in tried.paths and u not in tried.failed]
    if todo:
        with ThreadPoolExecutor(min(WORKERS, len(todo))) as pool:
            list(pool.map(one, todo))
    return out
