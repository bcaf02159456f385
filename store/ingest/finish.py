"""Column-wise last step of every ingest: orig ids, image paths and checks, flags, fingerprint.

Runs on the whole normalised table at once (numpy / Arrow), so the per-sample cost is a few
list operations whichever reader produced the rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store.ingest.images import CORRUPT, MISSING, ImageChecker, resolve_all
from store.ingest.normalize import BLANKS

# A sample whose conversation is longer than this (characters) is flagged `long_text`: it is
# usually a scraping accident and would be cut by any VLM's context anyway.
LONG_TEXT_CHARS = 32_768
# Canonical order of a sample's flags (docs/CONTRACTS.md).
FLAGS = (
    "missing_image",
    "corrupt_image",
    "image_token_mismatch",
    "path_escape",
    "duplicate_id",
    "empty_answer",
    "long_text",
    "remote_image",
)
# An image given as a URL (scheme://...) is not fetched: flagged remote_image, never opened.
REMOTE_RE = r"^[A-Za-z][A-Za-z0-9+.-]*://"

SAMPLE_SCHEMA = pa.schema(
    [
        ("orig_id", pa.string()),
        ("position", pa.int64()),
        ("images", pa.list_(pa.string())),
        ("images_raw", pa.list_(pa.string())),
        ("conversation", pa.string()),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("n_image_tokens", pa.int32()),
        ("n_turns", pa.int32()),
        ("task", pa.string()),
        ("flags", pa.list_(pa.string())),
        ("extra", pa.string()),
    ]
)


@dataclass
class Finished:
    table: pa.Table  # SAMPLE_SCHEMA, one row per sample in file order
    flag_counts: dict[str, int]
    n_flagged: int
    fingerprint: str


def _unique_ids(raw: list[str | None]) -> tuple[list[str], np.ndarray]:
    """Fill missing ids with '#<row>' and rename later duplicates '<id>#<n>' (n = 2, 3, ...)."""
    seen: set[str] = set()
    out: list[str] = []
    dup = np.zeros(len(raw), dtype=bool)
    add = seen.add
    for i, orig in enumerate(raw):
        if orig is None:
            orig = f"#{i}"
        if orig in seen:
            n = 2
            while f"{orig}#{n}" in seen:
                n += 1
            orig = f"{orig}#{n}"
            dup[i] = True
        add(orig)
        out.append(orig)
    return out, dup


def _list_array(lengths: np.ndarray, values: pa.Array) -> pa.ListArray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _hash(table: pa.Table) -> str:
    """sha256 over (orig_id, question, answer, images): lengths and bytes of each column."""
    h = hashlib.sha256()
    for name in ("orig_id", "question", "answer", "images"):
        col = table.column(name).combine_chunks()
        if name == "images":
            h.update(pc.list_value_length(col).to_numpy(zero_copy_only=False).astype("<i8"))
            col = col.flatten()
        h.update(pc.binary_length(col).to_numpy(zero_copy_only=False).astype("<i8"))
        h.update(_bytes(col))
    return h.hexdigest()


def _bytes(col: pa.Array) -> memoryview:
    """The concatenated bytes of a string array, without a copy."""
    if len(col) == 0:
        return memoryview(b"")
    offsets = np.frombuffer(
        col.buffers()[1], dtype=np.int32, count=len(col) + 1, offset=col.offset * 4
    )
    data = col.buffers()[2]
    return memoryview(data)[int(offsets[0]) : int(offsets[-1])] if data else memoryview(b"")


def finish(
    norm: pa.Table, root: str, checker: ImageChecker, fetched: dict[str, str] | None = None
) -> Finished:
    """`fetched`: image URLs downloaded into the store (remote.py) -> their stored paths."""
    n = norm.num_rows
    raw_ids = norm.column("orig_id")
    if raw_ids.null_count == 0 and pc.count_distinct(raw_ids).as_py() == n:
        ids, dup = raw_ids, np.zeros(n, dtype=bool)  # the usual case: nothing to rename
    else:
        ids, dup = _unique_ids(raw_ids.to_pylist())

    images_raw = norm.column("images_raw").combine_chunks()
    counts = pc.list_value_length(images_raw).fill_null(0).to_numpy(zero_copy_only=False)
    parents = np.repeat(np.arange(n), counts)
    flat_raw = images_raw.flatten()
    resolved, escaped = resolve_all(flat_raw, root)
    remote = (
        pc.match_substring_regex(flat_raw, REMOTE_RE)
        .fill_null(False)
        .to_numpy(zero_copy_only=False)
    )
    if remote.any():
        resolved = pc.if_else(pa.array(remote), flat_raw, resolved)  # a URL stays a URL
        if fetched:  # ... unless --fetch-remote stored it: then the stored file
            keys = pa.array(list(fetched), type=pa.string())
            where = pc.index_in(flat_raw, value_set=keys).fill_null(-1).to_numpy()
            got = where >= 0
            stored = pc.take(
                pa.array(list(fetched.values()), type=pa.string()), np.maximum(where, 0)
            )
            resolved = pc.if_else(pa.array(got), stored, resolved)
            remote = remote & ~got
    # Never touch a path that escapes the root, not even with a stat.
    state = checker.check(resolved, skip=escaped | remote)

    def any_per_row(element_mask: np.ndarray) -> np.ndarray:
        return np.bincount(parents[element_mask], minlength=n) > 0

    answer = norm.column("answer").combine_chunks()
    empty = pc.equal(pc.utf8_trim(answer.fill_null(""), characters=BLANKS), "")
    masks = np.column_stack(
        [
            any_per_row(state == MISSING),
            any_per_row(state == CORRUPT),
            norm.column("n_image_tokens").to_numpy() != counts,
            any_per_row(escaped),
            dup,
            empty.to_numpy(zero_copy_only=False),
            norm.column("chars").to_numpy() > LONG_TEXT_CHARS,
            any_per_row(remote),
        ]
    )
    rows, kinds = np.nonzero(masks)  # row-major: each row's flags in FLAGS order
    names = pa.array(np.asarray(FLAGS, dtype=object)[kinds], type=pa.string())
    flags = _list_array(np.bincount(rows, minlength=n), names)

    table = pa.Table.from_arrays(
        [
            ids if isinstance(ids, pa.ChunkedArray) else pa.array(ids, type=pa.string()),
            pa.array(np.arange(n, dtype=np.int64)),
            _list_array(counts, resolved),
            images_raw,
            norm.column("conversation"),
            norm.column("question"),
            answer.fill_null(""),
            norm.column("n_image_tokens"),
            norm.column("n_turns"),
            norm.column("task"),
            flags,
            norm.column("extra"),
        ],
        schema=SAMPLE_SCHEMA,
    )
    per_kind = masks.sum(axis=0)
    return Finished(
        table=table,
        flag_counts={k: int(c) for k, c in zip(FLAGS, per_kind, strict=True) if c},
        n_flagged=int(masks.any(axis=1).sum()),
        fingerprint=_hash(table),
    )
