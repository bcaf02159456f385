"""Column-wise last step of every ingest: orig ids, image paths and checks, flags, fingerprint.

Runs on chunks of the normalised rows (numpy / Arrow), so the per-sample cost is a few list
operations whichever reader produced the rows; the chunks are staged (staging.py) as they are
finished, and only the duplicate-id check and the fingerprint look at every row, a column at a
time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store.ingest.images import CORRUPT, MISSING, ImageChecker, resolve_all
from store.ingest.normalize import BLANKS
from store.ingest.remote import Fetched
from store.ingest.staging import FileStage, MemoryStage

Stage = MemoryStage | FileStage

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
    staged: pa.Table | Path  # SAMPLE_SCHEMA, one row per sample in file order (staging.py)
    n_samples: int
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


def _hash(stage: Stage) -> str:
    """sha256 over (orig_id, question, answer, images): lengths and bytes of each column.

    Read back a column at a time, in passes, so a staged file is never in memory whole; the
    digest is the one of the whole columns (sha256 is fed the same bytes in the same order)."""
    h = hashlib.sha256()

    def chunks(name: str, flat: bool) -> Iterator[pa.Array]:
        for batch in stage.batches([name]):
            col = batch.column(0)
            yield pc.list_flatten(col) if flat else col

    for name in ("orig_id", "question", "answer", "images"):
        nested = name == "images"
        if nested:
            for col in chunks(name, False):
                h.update(pc.list_value_length(col).to_numpy(zero_copy_only=False).astype("<i8"))
        for col in chunks(name, nested):
            h.update(pc.binary_length(col).to_numpy(zero_copy_only=False).astype("<i8"))
        for col in chunks(name, nested):
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


class Finisher:
    """Ids, image paths and checks, flags for chunks of normalised rows, staged as they come;
    `done()` then settles what needs every row (duplicate ids, the fingerprint).

    `fetch(norm) -> Fetched`: --fetch-remote, called per chunk (remote.py)."""

    def __init__(
        self,
        root: str,
        checker: ImageChecker,
        stage: Stage,
        fetch: Callable[[pa.Table], Fetched] | None = None,
    ) -> None:
        self.root = root
        self.checker = checker
        self.stage = stage
        self.fetch = fetch
        self.fetched = Fetched()
        self.n = 0
        self.per_kind = np.zeros(len(FLAGS), dtype=np.int64)
        self.n_flagged = 0

    def add(self, norm: pa.Table, known: dict[str, int] | None = None) -> None:
        """Finish one chunk; `known`: image verdicts already made (images checked as stored)."""
        n = norm.num_rows
        images_raw = norm.column("images_raw").combine_chunks()
        counts = pc.list_value_length(images_raw).fill_null(0).to_numpy(zero_copy_only=False)
        parents = np.repeat(np.arange(n), counts)
        flat_raw = images_raw.flatten()
        resolved, escaped = resolve_all(flat_raw, self.root)
        remote = (
            pc.match_substring_regex(flat_raw, REMOTE_RE)
            .fill_null(False)
            .to_numpy(zero_copy_only=False)
        )
        known = dict(known or {})
        if remote.any():
            resolved = pc.if_else(pa.array(remote), flat_raw, resolved)  # a URL stays a URL
            fetched = self.fetched
            if self.fetch is not None:  # ... unless --fetch-remote stored it: then the file
                got = self.fetch(norm)
                fetched.paths.update(got.paths)
                fetched.failed.update(got.failed)
                fetched.verdicts.update(got.verdicts)
                known.update(fetched.verdicts)
            if fetched.paths:
                keys = pa.array(list(fetched.paths), type=pa.string())
                where = pc.index_in(flat_raw, value_set=keys).fill_null(-1).to_numpy()
                hit = where >= 0
                stored = pc.take(
                    pa.array(list(fetched.paths.values()), type=pa.string()),
                    np.maximum(where, 0),
                )
                resolved = pc.if_else(pa.array(hit), stored, resolved)
                remote = remote & ~hit
        # Never touch a path that escapes the root, not even with a stat.
        state = self.checker.check(resolved, skip=escaped | remote, known=known)

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
                np.zeros(n, dtype=bool),  # duplicate_id: known once every id is (done())
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
                norm.column("orig_id"),
                pa.array(np.arange(self.n, self.n + n, dtype=np.int64)),
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
        self.stage.write(table)
        self.n += n
        self.per_kind += masks.sum(axis=0)
        self.n_flagged += int(masks.any(axis=1).sum())

    def done(self) -> Finished:
        """Rename missing and repeated ids (flagged duplicate_id), then fingerprint the rows."""
        raw = pa.chunked_array(
            [b.column(0) for b in self.stage.batches(["orig_id"])], type=pa.string()
        )
        if raw.null_count or pc.count_distinct(raw).as_py() != self.n:
            ids, dup = _unique_ids(raw.to_pylist())
            self._mark(ids, dup)
        return Finished(
            staged=self.stage.staged,
            n_samples=self.n,
            flag_counts={k: int(c) for k, c in zip(FLAGS, self.per_kind, strict=True) if c},
            n_flagged=self.n_flagged,
            fingerprint=_hash(self.stage),
        )

    def _mark(self, ids: list[str], dup: np.ndarray) -> None:
        """Rewrite the staged rows with the unique ids and the duplicate_id flags (rare)."""
        duplicate = FLAGS.index("duplicate_id")
        order = {f: i for i, f in enumerate(FLAGS)}

        def fix(batch: pa.RecordBatch, start: int) -> pa.RecordBatch:
            stop = start + batch.num_rows
            flags = batch.column("flags").to_pylist()
            for i in np.flatnonzero(dup[start:stop]):
                flags[i] = sorted([*flags[i], FLAGS[duplicate]], key=order.__getitem__)
            cols = dict(zip(batch.schema.names, batch.columns, strict=True))
            cols["orig_id"] = pa.array(ids[start:stop], type=pa.string())
            cols["flags"] = pa.array(flags, type=pa.list_(pa.string()))
            return pa.RecordBatch.from_arrays(
                [cols[f.name] for f in SAMPLE_SCHEMA], schema=SAMPLE_SCHEMA
            )

        was_flagged = np.zeros(self.n, dtype=bool)
        start = 0
        for batch in self.stage.batches(["flags"]):
            lengths = pc.list_value_length(batch.column(0)).to_numpy(zero_copy_only=False)
            was_flagged[start : start + len(lengths)] = lengths > 0
            start += len(lengths)
        self.stage.rewrite(fix)
        self.per_kind[duplicate] = int(dup.sum())
        self.n_flagged += int((dup & ~was_flagged).sum())
