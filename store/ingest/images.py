"""Image paths: resolve them against the image root, refuse ones that escape it, and check files.

Checks run in a thread pool over unique paths (os.stat and Pillow release the GIL while they
wait on the disk), so a dataset that reuses images pays for each file once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

CHECK_MODES = ("none", "exists", "header", "decode")
OK, MISSING, CORRUPT = 0, 1, 2
_CHUNK = 512  # paths per pool task: amortises the pool's per-task overhead


def resolve(raw: str, root: str) -> tuple[str, bool]:
    """(absolute normalised path, escapes_root) for one path as written in the source.

    Absolute paths are taken as the user wrote them; relative ones must stay inside `root`.
    The test is lexical (normpath), so a crafted '../../etc/passwd' is never opened. A symlink
    inside the root that points elsewhere is followed (the user put it there).
    """
    if os.path.isabs(raw):
        return os.path.normpath(raw), False
    if "/." not in "/" + raw and "//" not in raw and not raw.endswith("/") and "\\" not in raw:
        return root + os.sep + raw, False  # already normal: skip normpath (the hot path)
    full = os.path.normpath(os.path.join(root, raw))
    return full, not (full.startswith(root + os.sep) or full == root)


def _check_one(path: str, mode: str) -> int:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return MISSING
    except OSError:
        return CORRUPT  # permission denied, a loop of symlinks: present but unreadable
    if not os.path.isfile(path):
        return MISSING if not os.path.exists(path) else CORRUPT
    if st.st_size == 0:
        return CORRUPT
    if mode == "exists":
        return OK
    from PIL import Image

    try:
        with Image.open(path) as im:
            if mode == "decode":
                im.load()
            w, h = im.size
            if w <= 0 or h <= 0:
                return CORRUPT
    except Exception:  # Pillow raises many types (OSError, SyntaxError, DecompressionBombError)
        return CORRUPT
    return OK


def _check_chunk(args: tuple[list[str], str]) -> list[int]:
    paths, mode = args
    return [_check_one(p, mode) for p in paths]


class ImageChecker:
    """Remembers each path's verdict, so repeated images are checked once per ingest.

    A folder is listed once (os.scandir) and a path whose name is not in its folder is missing
    without a stat of its own: a dataset whose image folder is absent or incomplete costs one
    listing per folder, not one system call per sample.
    """

    def __init__(self, mode: str, workers: int | None = None) -> None:
        self.mode = mode
        self.verdicts: dict[str, int] = {}
        self.listings: dict[str, frozenset[str] | None] = {}  # None: could not list, stat each
        self.workers = workers or min(16, (os.cpu_count() or 2) * 4)
        self.pool = ThreadPoolExecutor(self.workers) if mode != "none" else None

    def _listing(self, folder: str) -> frozenset[str] | None:
        if folder not in self.listings:
            try:
                with os.scandir(folder) as it:
                    self.listings[folder] = frozenset(e.name for e in it)
            except (FileNotFoundError, NotADirectoryError):
                self.listings[folder] = frozenset()
            except OSError:
                self.listings[folder] = None
        return self.listings[folder]

    def check(self, paths: Iterable[str]) -> dict[str, int]:
        if self.pool is None:
            return self.verdicts
        verdicts = self.verdicts
        todo = []
        split = os.path.split
        for p in dict.fromkeys(paths):
            if p in verdicts:
                continue
            folder, name = split(p)
            names = self._listing(folder)
            if names is not None and name not in names:
                verdicts[p] = MISSING
            else:
                todo.append(p)
        chunks = [(todo[i : i + _CHUNK], self.mode) for i in range(0, len(todo), _CHUNK)]
        for chunk, verdicts in zip(chunks, self.pool.map(_check_chunk, chunks), strict=True):
            self.verdicts.update(zip(chunk[0], verdicts, strict=True))
        return self.verdicts

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
