"""Image paths: resolve them against the image root, refuse ones that escape it, and check files.

Checks run in a thread pool over unique paths (os.stat and Pillow release the GIL while they
wait on the disk), so a dataset that reuses images pays for each file once.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store.images import ImageBytes, sniff

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
    return _pillow(path, mode)


# Pillow's plugin for each extension the store's sniff() gives.
_PILLOW_FORMAT = {"jpg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WEBP", "bmp": "BMP"}


def _pillow(src: str | io.BytesIO, mode: str, fmt: str | None = None) -> int:
    from PIL import Image

    try:
        with Image.open(src, formats=[fmt] if fmt else None) as im:
            if mode == "decode":
                im.load()
            w, h = im.size
            if w <= 0 or h <= 0:
                return CORRUPT
    except Exception:  # Pillow raises many types (OSError, SyntaxError, DecompressionBombError)
        if fmt is not None and isinstance(src, io.BytesIO):
            src.seek(0)
            return _pillow(src, mode)  # the verdict of every plugin, as without the hint
        return CORRUPT
    return OK


# JPEG markers whose segments the quick reader below takes as Pillow does: the tables, the first
# three frame types, restart interval, comment, and application segments (some of them).
_SOF = frozenset((0xC0, 0xC1, 0xC2))
_PLAIN = frozenset((0xC4, 0xDD, 0xFE, *range(0xE3, 0xED), 0xEF))  # read and skipped by Pillow
_MAX_PIXELS = 89_478_485  # PIL.Image.MAX_IMAGE_PIXELS: larger ones Pillow warns about


def jpeg_header_ok(data: ImageBytes) -> bool:
    """True when `data` is a JPEG whose header Pillow opens (size > 0), read in ~2 us.

    Answers True only for headers in the plain form encoders write: marker after marker up to the
    start of scan, every segment whole, one 8-bit frame of 1, 3 or 4 components, JFIF / Adobe /
    ICC / comment / table segments long enough for what Pillow reads of them. Anything else
    (Exif, whose resolution Pillow parses; MPF; fill bytes; other frame types; a cut or odd
    segment) answers False, and the caller asks Pillow: never a different verdict, only a slower
    one (tests/store/test_ingest_hub.py compares the two on cut and damaged files)."""
    view = bytes(data[:65536]) if len(data) > 65536 else bytes(data)
    n = len(view)
    if not view.startswith(b"\xff\xd8\xff"):
        return False
    pos, size = 2, (0, 0)
    icc: list[int] = []  # lengths of the ICC chunks before the frame
    while pos + 4 <= n:
        if view[pos] != 0xFF:
            return False
        marker, length = view[pos + 1], (view[pos + 2] << 8) | view[pos + 3]
        end = pos + 2 + length
        if length < 2 or end > n:
            return False
        seg = view[pos + 4 : end]
        if marker == 0xDA:  # start of scan: Pillow stops reading here
            w, h = size
            return w > 0 and h > 0 and w * h <= _MAX_PIXELS
        if marker in _SOF:
            if len(seg) < 6 or (len(seg) - 6) % 3 or seg[0] != 8 or seg[5] not in (1, 3, 4):
                return False
            size = ((seg[3] << 8) | seg[4], (seg[1] << 8) | seg[2])
            if icc and min(icc) < 14:
                return False  # an ICC chunk too short for the sequence byte Pillow reads
            icc = []
        elif marker == 0xDB:  # quantisation tables, checked as Pillow parses them
            rest = seg
            while rest:
                table = 65 if rest[0] < 16 else 129
                if len(rest) < table:
                    return False
                rest = rest[table:]
        elif marker == 0xE0:
            if seg.startswith(b"JFIF") and len(seg) < 12:
                return False
        elif marker == 0xE2:
            if seg.startswith(b"MPF\0"):
                return False  # Pillow may open it as MPO
            if seg.startswith(b"ICC_PROFILE\0"):
                icc.append(len(seg))
        elif marker == 0xEE:
            if seg.startswith(b"Adobe") and len(seg) < 12:
                return False
        elif marker in (0xE1, 0xED) or marker not in _PLAIN:
            return False  # Exif / XMP / Photoshop resources, or a marker not read here
        pos = end
    return False


def check_bytes(data: ImageBytes, mode: str) -> int:
    """The verdict `mode` would give a file holding `data` (for images still in memory).

    The plugin that the magic bytes name is tried first (it alone accepts them: 8 us of Pillow's
    27 us a JPEG header go to asking the others); if it fails, every plugin is asked as before."""
    if mode in ("none", "exists"):
        return OK if data or mode == "none" else CORRUPT
    if not data:
        return CORRUPT
    if mode == "header" and jpeg_header_ok(data):
        return OK
    return _pillow(io.BytesIO(data), mode, _PILLOW_FORMAT.get(sniff(data)))


def _check_chunk(args: tuple[list[str], str]) -> list[int]:
    paths, mode = args
    return [_check_one(p, mode) for p in paths]


# A relative path needs no normpath unless it has '.' segments, '//', a trailing '/', or is empty.
_ODD = r"^$|^\.|/\.|//|/$|\\"


def resolve_all(raw: pa.Array, root: str) -> tuple[pa.Array, np.ndarray]:
    """resolve() over a string array: (resolved paths, escapes_root mask), column-wise.

    Plain relative paths (nearly all of them) become `root/raw` in one Arrow kernel; only
    absolute or odd ones go through os.path.normpath.
    """
    n = len(raw)
    escaped = np.zeros(n, dtype=bool)
    if n == 0:
        return pa.array([], type=pa.string()), escaped
    joined = pc.binary_join_element_wise(root, raw, os.sep)
    odd = pc.or_(pc.starts_with(raw, os.sep), pc.match_substring_regex(raw, _ODD))
    odd_idx = np.flatnonzero(odd.to_numpy(zero_copy_only=False))
    if len(odd_idx) == 0:
        return joined, escaped
    out = joined.to_pylist()
    raw_list = raw.to_pylist()
    for i in odd_idx:
        out[i], escaped[i] = resolve(raw_list[i], root)
    return pa.array(out, type=pa.string()), escaped


class ImageChecker:
    """Checks columns of image paths, chunk after chunk of one ingest.

    Each folder is listed once per ingest (os.scandir; the listing is kept as an Arrow array,
    ~60 B a file; listed again for a chunk that names a file it lacks) and a path whose name is
    not in its folder is missing without a system call of its own: a dataset whose image folder
    is absent or incomplete costs one listing per folder and chunk, not one stat per sample. Files that exist are checked (stat, Pillow) in a thread pool, each
    distinct file once per chunk.
    """

    def __init__(self, mode: str, workers: int | None = None) -> None:
        self.mode = mode
        self.workers = workers or min(16, (os.cpu_count() or 2) * 4)
        self.pool = ThreadPoolExecutor(self.workers) if mode != "none" else None
        self._listings: dict[str, pa.Array | None] = {}  # folder -> its paths; None: unreadable

    def _listing(self, folder: str) -> pa.Array | None:
        if folder not in self._listings:
            try:
                with os.scandir(folder or os.sep) as it:
                    names = [os.path.join(folder or os.sep, e.name) for e in it]
            except (FileNotFoundError, NotADirectoryError):
                names = []
            except OSError:
                names = None  # unreadable folder: check its files one by one
            listed = None if names is None else pa.array(names, type=pa.string())
            self._listings[folder] = listed
        return self._listings[folder]

    def _present(self, paths: pa.Array, folders: pa.Array, todo: list[str]) -> np.ndarray:
        """Per path: is its name in its folder's listing (or its folder unreadable)?"""
        existing: list[pa.Array] = [pa.array([], type=pa.string())]
        unlisted: list[str] = []
        for folder in todo:
            listed = self._listing(folder)
            if listed is None:
                unlisted.append(folder)
            else:
                existing.append(listed)
        present = pc.is_in(paths, value_set=pa.concat_arrays(existing))
        if unlisted:
            in_unlisted = pc.is_in(folders, value_set=pa.array(unlisted, type=pa.string()))
            present = pc.or_(present, in_unlisted)
        return present.to_numpy(zero_copy_only=False)

    def check(
        self, paths: pa.Array, skip: np.ndarray, known: dict[str, int] | None = None
    ) -> np.ndarray:
        """OK / MISSING / CORRUPT per path; `skip`ped paths (escaping the root) stay OK, unread;
        paths in `known` (images checked from memory as they were stored) are not reopened."""
        state = np.zeros(len(paths), dtype=np.int8)
        if self.pool is None or len(paths) == 0:
            return state
        if known:
            keys = pa.array(list(known), type=pa.string())
            where = pc.index_in(paths, value_set=keys).fill_null(-1).to_numpy()
            hit = where >= 0
            state[hit] = np.fromiter(known.values(), dtype=np.int8)[where[hit]]
            skip = skip | hit
        if skip.all():
            return state
        folders = pc.replace_substring_regex(paths, r"/[^/]*$", "")
        # Only folders of paths still to check: not the image store's 256 folders, say, whose
        # files were judged as they were stored (their listing grows with every dataset).
        todo_folders = pc.filter(folders, pa.array(~skip)) if skip.any() else folders
        todo = pc.unique(todo_folders).to_pylist()
        cached = [f for f in todo if f in self._listings]
        present_np = self._present(paths, folders, todo) & ~skip
        if cached and (~present_np & ~skip).any():
            # A listing taken for an earlier chunk may predate a file: look again, once a chunk.
            for folder in cached:
                del self._listings[folder]
            present_np = self._present(paths, folders, todo) & ~skip
        state[~present_np & ~skip] = MISSING
        idx = np.flatnonzero(present_np)
        if len(idx):
            candidates = pc.take(paths, pa.array(idx)).to_pylist()
            todo = list(dict.fromkeys(candidates))
            chunks = [(todo[i : i + _CHUNK], self.mode) for i in range(0, len(todo), _CHUNK)]
            verdicts: dict[str, int] = {}
            for chunk, found in zip(chunks, self.pool.map(_check_chunk, chunks), strict=True):
                verdicts.update(zip(chunk[0], found, strict=True))
            state[idx] = [verdicts[p] for p in candidates]
        return state

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
