"""The workspace's content-addressed image store: embedded image bytes written once, by sha256.

An image that arrives as bytes (Hub Parquet `struct<bytes, path>`, a base64 data URL) is stored as
`images/<first 2 hex>/<sha256>.<ext>`, the extension read from its magic bytes. The name is the
content, so the same picture in two samples or two datasets is one file, and ingesting the same
data again writes nothing. Each file is written to `images/.incoming/` and renamed into place, so
a reader never sees half a file; an interrupted ingest leaves nothing there that the next one does
not sweep (temp names carry the writer's pid) or reuse (finished files are content-addressed).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

# (offset, magic, extension): enough to name every format Pillow reads in VLM data.
_MAGIC = (
    (0, b"\x89PNG\r\n\x1a\n", "png"),
    (0, b"\xff\xd8\xff", "jpg"),
    (0, b"GIF87a", "gif"),
    (0, b"GIF89a", "gif"),
    (8, b"WEBP", "webp"),
    (0, b"BM", "bmp"),
    (0, b"II*\x00", "tif"),
    (0, b"MM\x00*", "tif"),
    (4, b"ftypavif", "avif"),
    (4, b"ftypheic", "heic"),
)
UNKNOWN_EXT = "bin"  # bytes that are no image we know: stored, then flagged corrupt_image
INCOMING = ".incoming"
_CHUNK = 64  # images per pool task: hashing and writing release the GIL, the loop does not


ImageBytes = bytes | memoryview  # image bytes: a memoryview is a zero-copy slice of an Arrow buffer


def sniff(data: ImageBytes) -> str:
    """The file extension that the magic bytes of `data` announce ('bin' when none does)."""
    head = bytes(data[:16])
    for offset, magic, ext in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return ext
    return UNKNOWN_EXT


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def sweep_dead(folder: Path) -> int:
    """Remove the files in `folder` named `<pid>-...` whose process has ended; returns how many."""
    removed = 0
    for entry in os.scandir(folder):
        pid = entry.name.split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            Path(entry.path).unlink(missing_ok=True)
            removed += 1
    return removed


@dataclass
class StoreStats:
    written: int = 0  # new files
    reused: int = 0  # already in the store (this ingest, an earlier one, another dataset)
    bytes_written: int = 0


class ImageStore:
    """Writes image bytes into `root` (the workspace's images/ folder), content-addressed.

    `check(data) -> verdict`, when given, judges each image from memory as it is stored
    (`submit` returns the verdicts), so the ingest's image check need not open the file again.
    """

    def __init__(
        self, root: Path, workers: int = 4, check: Callable[[ImageBytes], int] | None = None
    ) -> None:
        self.root = Path(root)
        self.check = check
        self.incoming = self.root / INCOMING
        self.incoming.mkdir(parents=True, exist_ok=True)
        self.stats = StoreStats()
        # sha256 -> code of (extension, verdict): repeats within this ingest are neither
        # rewritten nor judged again (~100 bytes an image, a small int for the pair).
        self._known: dict[bytes, int] = {}
        self._codes: dict[tuple[str, int | None], int] = {}
        self._kinds: dict[int, tuple[str, int | None]] = {}
        self._serial = itertools.count()
        self._dirs: set[str] = set()
        self._tag = f"{os.getpid()}-{secrets.token_hex(3)}"
        self._lock = threading.Lock()  # _put runs in several threads
        self._pool = ThreadPoolExecutor(workers) if workers > 1 else None
        self.sweep()

    def sweep(self) -> int:
        """Remove temp files left by writers that are no longer running; returns how many."""
        return sweep_dead(self.incoming)

    def path_for(self, digest: str, ext: str) -> str:
        return os.path.join(self.root, digest[:2], f"{digest}.{ext}")

    def _put(self, data: ImageBytes) -> tuple[str, int, int | None]:
        """(path, bytes written: 0 when the file was already there, verdict of `check`)."""
        raw = hashlib.sha256(data).digest()
        digest = raw.hex()
        known = self._known.get(raw)
        if known is None:
            kind = (sniff(data), None if self.check is None else self.check(data))
            # Claim the digest before writing: a repeat in another thread writes nothing and
            # counts as reused (a batch is complete only once every write of it is).
            with self._lock:
                known = self._known.get(raw)
                if known is None:
                    code = self._codes.setdefault(kind, len(self._codes))
                    self._kinds[code] = kind
                    self._known[raw] = code
        if known is not None:  # a repeat within this ingest: neither rewritten nor judged again
            ext, verdict = self._kinds[known]
            return self.path_for(digest, ext), 0, verdict
        ext, verdict = kind
        final = self.path_for(digest, ext)
        try:
            if os.stat(final).st_size == len(data):
                return final, 0, verdict
        except FileNotFoundError:
            pass
        folder = os.path.dirname(final)
        if folder not in self._dirs:
            os.makedirs(folder, exist_ok=True)
            self._dirs.add(folder)
        tmp = os.path.join(self.incoming, f"{self._tag}-{digest}-{next(self._serial)}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(tmp, final)  # atomic: a reader sees no file or the whole file
        except BaseException:
            with self._lock:
                self._known.pop(raw, None)
            Path(tmp).unlink(missing_ok=True)
            raise
        return final, len(data), verdict

    def _put_chunk(self, blobs: Sequence[ImageBytes]) -> list[tuple[str, int, int | None]]:
        return [self._put(b) for b in blobs]

    def submit(self, blobs: Sequence[ImageBytes]) -> Callable[[], list[tuple[str, int | None]]]:
        """Start storing `blobs` in the pool; the returned call waits and gives, in order, each
        one's (path, verdict of `check`; None without one).

        The caller reads and converts the next batch meanwhile: decoding and writing overlap.
        """
        if self._pool is None:
            results = self._put_chunk(blobs)
            return lambda: self._count(results)
        chunks = [blobs[i : i + _CHUNK] for i in range(0, len(blobs), _CHUNK)]
        futures: list[Future] = [self._pool.submit(self._put_chunk, c) for c in chunks]
        return lambda: self._count([r for f in futures for r in f.result()])

    def _count(self, results: list[tuple[str, int, int | None]]) -> list[tuple[str, int | None]]:
        with self._lock:
            for _, n, _ in results:
                if n:
                    self.stats.written += 1
                    self.stats.bytes_written += n
                else:
                    self.stats.reused += 1
        return [(p, v) for p, _, v in results]

    def close(self) -> None:
        """Wait for writes in flight, then remove this writer's temp files (an interrupt)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for entry in os.scandir(self.incoming):
            if entry.name.startswith(self._tag + "-"):
                Path(entry.path).unlink(missing_ok=True)
