"""Hub Parquet batches in LLaVA-OneVision's shape converted column-wise with Arrow, not row by row.

hub.to_sample() reads one row at a time (pyarrow's to_pylist plus the conversion: ~80 us a row);
this module computes the same normalised columns for a whole batch with Arrow kernels and hands
the embedded image bytes over as zero-copy slices of the batch's buffers. It answers only for a
batch it can convert exactly: any unusual value (an unknown role, a turn with keys of its own, a
float id, a data URL where a path should be, a control character that JSON writes as \\uXXXX ...)
returns None and the batch goes the per-row way, which handles it or raises the precise error.
tests/store/test_ingest_columnar.py compares both ways' rows byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from json.encoder import encode_basestring as _quote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store.images import ImageBytes
from store.ingest import hub
from store.ingest.formats import IMAGE_TOKEN, LLAVA_ROLES
from store.ingest.normalize import BLANKS

# What json.dumps(ensure_ascii=False) escapes with a short form; other control characters (the
# \uXXXX ones) send the batch the per-row way.
_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"),
            ("\b", "\\b"), ("\f", "\\f"))  # fmt: skip
_LONG_ESCAPED = r"[\x00-\x07\x0b\x0e-\x1f]"
_TOKEN_RE = r"[ \t\n\r\f\v]*" + IMAGE_TOKEN + r"[ \t\n\r\f\v]*"
_ROLE_NAMES = pa.array(list(LLAVA_ROLES), type=pa.string())
_ROLE_VALUES = pa.array(list(LLAVA_ROLES.values()), type=pa.string())


class Unusual(Exception):
    """Something in the batch the column-wise conversion does not take: read it row by row."""


@dataclass
class Batch:
    """One converted batch: the normalised text columns, and its images in sample order."""

    columns: dict[str, pa.Array]  # NORM_SCHEMA's columns but images_raw
    image_counts: np.ndarray  # images per sample
    image_paths: list[str | None]  # each image as written, None where it is embedded
    blobs: list[ImageBytes]  # the embedded ones, in order

    def images_raw(self, stored: list[str]) -> pa.ListArray:
        """The images_raw column, embedded images replaced by their paths in the store."""
        it = iter(stored)
        flat = [p if p is not None else next(it) for p in self.image_paths]
        offsets = np.zeros(len(self.image_counts) + 1, dtype=np.int32)
        np.cumsum(self.image_counts, out=offsets[1:])
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=pa.string()))


def convert(batch: pa.RecordBatch, fmt: str, keys: hub.Keys) -> Batch | None:
    """The batch converted column-wise, or None when it must be read row by row."""
    if fmt != "llava":
        return None
    try:
        return _llava(batch, keys)
    except Unusual:
        return None


def _column(batch: pa.RecordBatch, name: str) -> pa.Array | None:
    idx = batch.schema.get_field_index(name)
    return batch.column(idx) if idx >= 0 else None


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _null_if_empty(col: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(col, ""), pa.scalar(None, col.type), col).cast(pa.string())


def _orig_ids(col: pa.Array | None, n: int) -> pa.Array:
    if col is None or pa.types.is_null(col.type):
        return pa.nulls(n, pa.string())
    if _is_text(col.type):
        return _null_if_empty(col)
    if pa.types.is_integer(col.type):
        return col.cast(pa.string())  # str(int), as the row reader writes it
    raise Unusual  # floats, bools, structs: the row reader's rules (or its error)


def quoted(text: pa.Array) -> pa.Array:
    """Each string as a JSON string literal, exactly as json.encoder.encode_basestring."""
    if pc.any(pc.match_substring_regex(text, _LONG_ESCAPED)).as_py():
        raise Unusual
    for char, escape in _ESCAPES:
        text = pc.replace_substring(text, char, escape)
    return pc.binary_join_element_wise('"', text, '"', "")


def _elements(col: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(embedded bytes or null, path or null) of each element of an image column."""
    t = col.type
    if _is_text(t):
        return pa.nulls(len(col), pa.binary()), col
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return col, pa.nulls(len(col), pa.string())
    if pa.types.is_struct(t):
        names = {t.field(i).name for i in range(t.num_fields)}
        if not names <= {"bytes", "path"}:
            raise Unusual
        data = pc.struct_field(col, "bytes") if "bytes" in names else pa.nulls(len(col))
        path = pc.struct_field(col, "path") if "path" in names else pa.nulls(len(col))
        if not (pa.types.is_binary(data.type) or pa.types.is_large_binary(data.type)):
            if not pa.types.is_null(data.type):
                raise Unusual  # bytes as base64 text: the row reader decodes it
            data = data.cast(pa.binary())
        if not _is_text(path.type):
            if not pa.types.is_null(path.type):
                raise Unusual
            path = path.cast(pa.string())
        return data, path
    raise Unusual


def _images(col: pa.Array | None, n: int) -> tuple[np.ndarray, list[str | None], list[ImageBytes]]:
    """(images per sample, each image's path as written or None, the embedded bytes)."""
    if col is None or pa.types.is_null(col.type):
        return np.zeros(n, dtype=np.int64), [], []
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        lengths = pc.list_value_length(col).fill_null(0).to_numpy(zero_copy_only=False)
        col = pc.list_flatten(col)
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            raise Unusual  # lists of lists
        parents = np.repeat(np.arange(n), lengths)
    else:
        parents = np.arange(n)
    data, path = _elements(col)
    data = data.cast(pa.large_binary())  # 64-bit offsets, one layout to slice
    path = path.cast(pa.string())
    if pc.any(pc.starts_with(path, "data:")).as_py():
        raise Unusual  # a data URL: decoded row by row
    embedded = data.is_valid().to_numpy(zero_copy_only=False)
    # "" is no image; a bare "file://" is an (empty) path, as the row reader has it.
    named = ~embedded & pc.fill_null(pc.not_equal(path, ""), False).to_numpy(zero_copy_only=False)
    path = pc.if_else(pc.starts_with(path, "file://"), pc.utf8_slice_codeunits(path, 7), path)
    keep = embedded | named
    counts = np.bincount(parents[keep], minlength=n)
    paths = pc.filter(path, pa.array(named)).to_pylist()
    flat: list[str | None] = [None] * int(keep.sum())
    is_path = named[keep]
    for i, p in zip(np.flatnonzero(is_path).tolist(), paths, strict=True):
        flat[i] = p
    blobs: list[ImageBytes] = []
    where = np.flatnonzero(embedded)
    if len(where):
        bufs = data.buffers()
        offsets = np.frombuffer(bufs[1], dtype=np.int64)[data.offset :]
        starts, ends = offsets[where].tolist(), offsets[where + 1].tolist()
        buf = memoryview(bufs[2]) if bufs[2] is not None else memoryview(b"")
        blobs = [buf[a:b] for a, b in zip(starts, ends, strict=True)]
    return counts, flat, blobs


def _first(mask: np.ndarray, parents: np.ndarray, n: int) -> pa.Array:
    """Per sample, the index of its first element where `mask` holds (null when none)."""
    idx = np.flatnonzero(mask)
    owners, at = np.unique(parents[idx], return_index=True)  # parents ascend: first of each
    first = np.full(n, -1, dtype=np.int64)
    first[owners] = idx[at]
    return pa.array(first, mask=first < 0)


def _extra(batch: pa.RecordBatch, known: set[str]) -> pa.Array:
    """The source's other columns as JSON, as hub._extra writes them."""
    others = [(i, f) for i, f in enumerate(batch.schema) if f.name not in known]
    n = batch.num_rows
    if not others:
        return pa.nulls(n, pa.string())
    parts: list[pa.Array | str] = []
    for k, (i, f) in enumerate(others):
        col = batch.column(i)
        if _is_text(f.type):
            value = quoted(col.cast(pa.string()))
        elif pa.types.is_integer(f.type):
            value = col.cast(pa.string())
        elif pa.types.is_boolean(f.type):
            value = pc.if_else(col, "true", "false")
        elif pa.types.is_null(f.type):
            value = pa.nulls(n, pa.string())
        else:
            raise Unusual  # floats, nested values: json.dumps row by row
        parts += [("{" if k == 0 else ", ") + _quote(f.name) + ": ", value.fill_null("null")]
    return pc.binary_join_element_wise(*parts, "}", "")


def _llava(batch: pa.RecordBatch, keys: hub.Keys) -> Batch:
    n = batch.num_rows
    conv = _column(batch, keys.conv)
    if conv is None or pa.types.is_null(conv.type):
        conv = pa.nulls(n, pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())])))
    t = conv.type
    if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
        raise Unusual
    turn_t = t.value_type
    if not pa.types.is_struct(turn_t):
        raise Unusual
    if {turn_t.field(i).name for i in range(turn_t.num_fields)} != {"from", "value"}:
        raise Unusual  # turns with keys of their own are kept in extra, row by row
    lengths = pc.list_value_length(conv).fill_null(0).to_numpy(zero_copy_only=False)
    parents = np.repeat(np.arange(n), lengths)
    turns = pc.list_flatten(conv)
    if turns.null_count:
        raise Unusual
    source_role = pc.struct_field(turns, "from")
    value = pc.struct_field(turns, "value")
    if not _is_text(source_role.type) or not (_is_text(value.type) or pa.types.is_null(value.type)):
        raise Unusual
    where = pc.index_in(source_role.cast(pa.string()), value_set=_ROLE_NAMES)
    if where.null_count:
        raise Unusual  # an unknown role: the row reader names it
    role = pc.take(_ROLE_VALUES, where)
    content = value.cast(pa.string()).fill_null("")

    turn_json = pc.binary_join_element_wise(
        '{"role":"', role, '","content":', quoted(content), "}", ""
    )
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    per_sample = pa.ListArray.from_arrays(pa.array(offsets), turn_json)
    conversation = pc.binary_join_element_wise("[", pc.binary_join(per_sample, ","), "]", "")

    role_np = role.to_numpy(zero_copy_only=False)
    user, assistant = role_np == "user", role_np == "assistant"
    question = pc.take(content, _first(user, parents, n))
    question = pc.utf8_trim(pc.replace_substring_regex(question, _TOKEN_RE, " "), BLANKS)
    answer = pc.take(content, _first(assistant, parents, n))
    tokens = pc.count_substring(content, IMAGE_TOKEN).to_numpy(zero_copy_only=False)
    chars = pc.utf8_length(content).to_numpy(zero_copy_only=False)
    n_user = np.bincount(parents[user], minlength=n)
    n_assistant = np.bincount(parents[assistant], minlength=n)

    task = _column(batch, keys.task)
    task = _null_if_empty(task) if task is not None and _is_text(task.type) else None
    counts, paths, blobs = _images(_column(batch, keys.image), n)
    columns = {
        "orig_id": _orig_ids(_column(batch, keys.id), n),
        "conversation": conversation,
        "question": question.fill_null(""),
        "answer": answer,
        "n_image_tokens": pa.array(np.bincount(parents, tokens, minlength=n).astype(np.int32)),
        "n_turns": pa.array(np.minimum(n_user, n_assistant).astype(np.int32)),
        "chars": pa.array(np.bincount(parents, chars, minlength=n).astype(np.int64)),
        "task": task if task is not None else pa.nulls(n, pa.string()),
        "extra": _extra(batch, {keys.id, keys.image, keys.conv, keys.task}),
        "present": conv.is_valid(),
    }
    return Batch(columns, counts, paths, blobs)
