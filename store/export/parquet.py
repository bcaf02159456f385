"""`--format parquet`: a Hub-style Parquet file with the images embedded, for TRL and `datasets`.

Columns: `id`, `images: list<struct<bytes, path>>` (what `datasets.Image` stores), `messages` in
TRL's typed-content form (`list<struct<content: list<struct<index, text, type>>, role>>`, each
`<image>` token a `{"type": "image"}` part, matched in order to `images`) and `task`. The
`huggingface` schema metadata declares `images` as a list of `Image` features, so
`load_dataset("parquet", ...)` decodes them. Written a few hundred rows at a time (one row group
each), so memory is bounded by the images of one row group, not the export.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

ROWS_PER_GROUP = 256
IMAGE_TOKEN = "<image>"
_URL_PREFIXES = ("http://", "https://", "s3://", "gs://")

PART = pa.struct([("index", pa.int64()), ("text", pa.string()), ("type", pa.string())])
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
        ("messages", pa.list_(pa.struct([("content", pa.list_(PART)), ("role", pa.string())]))),
        ("task", pa.string()),
    ]
)


def _value(dtype: str) -> dict:
    return {"dtype": dtype, "_type": "Value"}


# `datasets` reads its Features from this key; a JSON list is its spelling of a list feature.
HF_FEATURES = {
    "id": _value("string"),
    "images": [{"_type": "Image"}],
    "messages": [
        {
            "content": [
                {"index": _value("int64"), "text": _value("string"), "type": _value("string")}
            ],
            "role": _value("string"),
        }
    ],
    "task": _value("string"),
}
SCHEMA = SCHEMA.with_metadata({b"huggingface": json.dumps({"info": {"features": HF_FEATURES}})})


def parts(content: str, first_index: int) -> list[dict]:
    """TRL typed content for one turn: text pieces and an image part per `<image>` token.

    The newline LLaVA puts after a token belongs to the token, so `<image>\\nWhat?` becomes
    [image, text "What?"] and reads back as the same text.
    """
    out: list[dict] = []
    index = first_index
    for k, piece in enumerate(content.split(IMAGE_TOKEN)):
        if k:
            out.append({"index": index, "text": None, "type": "image"})
            index += 1
            if piece.startswith("\n"):
                piece = piece[1:]
        if piece:
            out.append({"index": None, "text": piece, "type": "text"})
    return out


def _image(path: str, source: str) -> dict:
    """{bytes, path}; bytes null when the file cannot be read (a flagged sample kept with
    --include-flagged: missing, unreadable, a remote URL), as `datasets` writes a path-only
    image."""
    if source.startswith(_URL_PREFIXES):
        return {"bytes": None, "path": path}
    try:
        with open(source, "rb") as fh:
            return {"bytes": fh.read(), "path": path}
    except OSError:
        return {"bytes": None, "path": path}


def _rows(batch: pa.RecordBatch) -> dict[str, list]:
    cols: dict[str, list] = {name: [] for name in SCHEMA.names}
    for row in batch.column(0).to_pylist():
        index = 0
        messages = []
        for turn in row["turns"]:
            content = parts(turn["content"] or "", index)
            index += sum(p["type"] == "image" for p in content)
            messages.append({"content": content, "role": turn["role"]})
        shown, sources = row["imgs"] or [], row["src_imgs"] or []
        cols["id"].append(row["id"])
        cols["images"].append([_image(p, s) for p, s in zip(shown, sources, strict=True)])
        cols["messages"].append(messages)
        cols["task"].append(row["task"])
    return cols


class _Hashing:
    """A write-only file object that feeds what it writes to a digest (pyarrow's sink)."""

    def __init__(self, fh: Any, digest: Any) -> None:
        self.fh, self.digest, self.closed = fh, digest, False

    def write(self, data: bytes) -> int:
        self.fh.write(data)
        self.digest.update(data)
        return len(data)

    def flush(self) -> None:
        self.fh.flush()

    def tell(self) -> int:
        return self.fh.tell()

    def close(self) -> None:
        self.closed = True  # the caller owns (fsyncs and closes) the real file


def write_parquet(batches: Iterable[pa.RecordBatch], fh: Any, digest: Any) -> int:
    """Write the export's rows (a struct column: id, imgs, src_imgs, turns, task); returns rows."""
    import pyarrow.parquet as pq

    n = 0
    sink = pa.PythonFile(_Hashing(fh, digest), mode="w")
    with pq.ParquetWriter(sink, SCHEMA) as writer:
        for batch in batches:
            for start in range(0, batch.num_rows, ROWS_PER_GROUP):
                part = batch.slice(start, ROWS_PER_GROUP)
                writer.write_table(pa.Table.from_pydict(_rows(part), schema=SCHEMA))
                n += part.num_rows
        if n == 0:
            writer.write_table(SCHEMA.empty_table())
    return n
