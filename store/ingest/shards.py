"""Hub-style sources: a file, folder or glob of shards read as one dataset, one batch at a time.

`plan()` decides whether a path is for this reader (a folder or glob of shards, Parquet in a
shape hub.py knows, JSON whose images or content parts need it) and checks every shard's schema
against the first before anything is written. `read()` streams the shards in name order, a few
hundred rows at a time, stores embedded images as it goes and yields the normalised rows batch by
batch (the caller finishes and stages them: finish.py, staging.py), so a folder of 20 GB of shards
costs two batches of image bytes in memory, not the folder. Parquet batches in LLaVA-OneVision's
shape are converted column-wise (columnar.py); anything else row by row (hub.py).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import pyarrow as pa

from store.errors import IngestError
from store.images import ImageBytes, ImageStore
from store.ingest import columnar, hub
from store.ingest.normalize import NORM_SCHEMA, RowNormaliser
from store.ingest.readers import Progress, Record, iter_records

PARQUET = (".parquet", ".pq")
DATA_EXTS = (*PARQUET, ".jsonl", ".json")
ROWS_PER_BATCH = 512  # rows whose image bytes are alive at once (~16 MB of 30 KB images)


@dataclass
class Plan:
    files: list[Path]
    fmt: str
    source: str  # recorded as the dataset's source_path
    name: str  # default dataset name
    default_root: Path  # relative image paths resolve here unless --image-root
    keys: hub.Keys
    sizes: list[int] = field(default_factory=list)

    @property
    def parquet(self) -> bool:
        return self.files[0].suffix.lower() in PARQUET


def _is_data(path: Path, top: Path) -> bool:
    rel = path.relative_to(top).parts
    return (
        path.suffix.lower() in DATA_EXTS
        and not any(p.startswith(".") for p in rel)  # .cache/ of huggingface_hub, temp files
        and path.name != "dataset_info.json"
        and path.is_file()
    )


def _several(path: object) -> tuple[list[Path], str, Path, str] | None:
    """(files in name order, source text, folder, default name) for a folder, glob or list of
    files; None when `path` is one file (or missing: the caller reports that)."""
    if isinstance(path, (list, tuple)):
        if len(path) == 1:
            return _several(path[0])
        files = sorted((Path(p).expanduser().resolve() for p in path), key=lambda p: p.name)
        for f in files:
            if not f.is_file():
                what = "is a folder" if f.is_dir() else "no such file"
                raise IngestError(
                    f"{f}: {what}. Several paths are the files of one dataset; pass a folder "
                    "of shards on its own."
                )
        top = Path(os.path.commonpath([str(f.parent) for f in files]))
        return files, f"{top}/{{{len(files)} files}}", top, top.name
    text = os.path.expanduser(os.fspath(path))  # type: ignore[call-overload]
    p = Path(text)
    if p.is_dir():
        if (p / "dataset_info.json").exists():
            return None  # LLaMA-Factory's layout: the existing reader
        p = p.resolve()
        files = sorted((f for f in p.rglob("*") if _is_data(f, p)), key=lambda f: str(f))
        if any(f.suffix.lower() in PARQUET for f in files):
            # A Hub dataset folder: the shards are Parquet; JSON beside them is metadata.
            files = [f for f in files if f.suffix.lower() in PARQUET]
        if not files:
            raise IngestError(
                f"{p} is a folder with no .parquet, .jsonl or .json files; point ingest at a "
                "data file, a folder of shards, or a LLaMA-Factory dataset_info.json."
            )
        return files, str(p), p, p.name
    if not p.exists() and any(c in text for c in "*?["):
        files = sorted(Path(f).resolve() for f in glob.glob(text, recursive=True))
        files = [f for f in files if f.is_file()]
        if not files:
            raise IngestError(f"{text}: no file matches this pattern. Check the path.")
        top = Path(os.path.commonpath([str(f.parent) for f in files]))
        return files, os.path.abspath(text), top, top.name
    return None


def _schema(path: Path) -> pa.Schema:
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for a bad footer
        raise IngestError(
            f"{path}: file footer: not a readable Parquet file ({exc}). Check the file is "
            "complete (an interrupted download?) and fetch it again."
        ) from None


def check_schemas(files: Sequence[Path]) -> pa.Schema:
    """The first shard's schema; any shard that differs raises naming the shard and column."""
    first = _schema(files[0])
    for f in files[1:]:
        other = _schema(f)
        for fld in first:
            idx = other.get_field_index(fld.name)
            if idx < 0:
                raise IngestError(
                    f"{f}: shard has no column {fld.name!r}, which the first shard "
                    f"{files[0].name} has ({fld.type}). Shards of one dataset must share a "
                    "schema; ingest this shard as its own dataset or fix it."
                )
            got = other.field(idx).type
            if got != fld.type and not (pa.types.is_null(got) or pa.types.is_null(fld.type)):
                raise IngestError(
                    f"{f}: column {fld.name!r} is {got} here but {fld.type} in the first shard "
                    f"{files[0].name}. Shards of one dataset must share a schema."
                )
        for name in other.names:
            if first.get_field_index(name) < 0:
                raise IngestError(
                    f"{f}: shard has a column {name!r} that the first shard {files[0].name} "
                    "lacks. Shards of one dataset must share a schema."
                )
    return first


def _first_record(path: Path) -> object:
    records = iter_records(path, Progress(path.stat().st_size))
    try:
        first = next(records, None)
    finally:
        records.close()  # type: ignore[attr-defined]
    return first.value if first else None


def plan(path: object, fmt: str, mapping: dict[str, str]) -> Plan | None:
    """A Plan when this reader should take `path`, None to leave it to the single-file reader."""
    several = _several(path)
    if several is None:
        if isinstance(path, (list, tuple)):
            return None
        p = Path(os.path.expanduser(os.fspath(path)))  # type: ignore[call-overload]
        if not p.is_file():
            return None
        if p.name == "dataset_info.json":
            return None
        p = p.resolve()
        files, source, top, name = [p], str(p), p.parent, p.stem or p.name
    else:
        files, source, top, name = several
    if fmt == "auto" and several is None and {"question", "answer"} & mapping.keys():
        return None  # a question/answer mapping asks for the table format
    if fmt in ("sharegpt", "table"):
        if several is None:
            return None
        raise IngestError(
            f"{source}: --format {fmt} reads one file; shards are read as "
            f"{', '.join(hub.CONVERTED)}. Ingest the files one by one, or leave --format auto."
        )
    exts = {f.suffix.lower() in PARQUET for f in files}
    if len(exts) > 1:
        raise IngestError(
            f"{source}: mixes Parquet and JSON files; keep one kind of shard per dataset."
        )
    parquet = files[0].suffix.lower() in PARQUET
    if parquet:
        found = hub.detect_schema(check_schemas(files))
        needed = found is not None
    else:
        try:
            first = _first_record(files[0])
        except IngestError:
            if several is None:
                return None  # the single-file reader reports it, with its own wording
            raise
        found, needed = hub.detect_record(first, mapping)
    if fmt == "auto":
        if found is None:
            if several is None:
                return None  # a plain table or an unknown shape: the existing reader says so
            raise IngestError(
                f"{files[0]}: cannot tell the shape of these shards (Hub Parquet, LLaVA, "
                f"ms-swift or typed chat). Pass --format {'|'.join(hub.CONVERTED)}."
            )
        if not (needed or several):
            return None  # plain LLaVA / ms-swift: the single-file reader (and its fast path)
        fmt = found
    elif not (fmt in hub.HUB_FORMATS or needed or parquet or several):
        return None
    sizes = [f.stat().st_size for f in files]
    return Plan(files, fmt, source, name, top, hub.keys_for(fmt, mapping), sizes)


# A converted batch: the image bytes to store, and how to build its rows from their stored paths.
Converted = tuple[list[ImageBytes], Callable[[list[str]], pa.Table]]


def _parquet_batches(path: Path, p: Plan) -> Iterator[tuple[Converted, int, float]]:
    """Batches of one Parquet file converted (column-wise when they can be): (batch, rows,
    fraction of the file read)."""
    import pyarrow.parquet as pq

    # pre_buffer would read every row group's column chunks ahead: a whole shard in memory
    # (397 MB for a 410 MB shard, measured); without it one row group at a time.
    pf = pq.ParquetFile(path, pre_buffer=False)
    total = pf.metadata.num_rows or 1
    index = 0
    for batch in pf.iter_batches(batch_size=ROWS_PER_BATCH):
        n = batch.num_rows
        fast = columnar.convert(batch, p.fmt, p.keys)
        if fast is not None:
            converted = _from_columns(fast)
        else:
            rows = batch.to_pylist()
            records = [Record(index + i, index + i + 1, r) for i, r in enumerate(rows)]
            converted = _from_rows(path, records, p)
        index += n
        yield converted, n, index / total


def _json_batches(path: Path, p: Plan) -> Iterator[tuple[Converted, int, float]]:
    size = path.stat().st_size or 1
    progress = Progress(size)
    records = iter_records(path, progress)
    while batch := list(islice(records, ROWS_PER_BATCH)):
        yield _from_rows(path, batch, p), len(batch), progress.done / size


def read(
    p: Plan,
    store: ImageStore,
    progress: Callable[[int, int, int], None] | None = None,
) -> Generator[tuple[pa.Table, dict[str, int]], None, None]:
    """Stream every shard as chunks of normalised rows, each with the image check verdicts of
    the images it stored (path -> verdict); `progress(bytes_done, bytes_total, rows)`."""
    total = sum(p.sizes)
    done_before = 0
    n = 0
    # One batch is being stored while the next is read and converted (two batches of image
    # bytes alive at most).
    pending: tuple[Callable[[list[str]], pa.Table], Callable[[], list]] | None = None

    def built(batch: tuple[Callable[[list[str]], pa.Table], Callable[[], list]]):
        build, stored = batch
        results = stored()
        known = {path: verdict for path, verdict in results if verdict is not None}
        return build([path for path, _ in results]), known

    try:
        for f, size in zip(p.files, p.sizes, strict=True):
            batches = _parquet_batches(f, p) if p.parquet else _json_batches(f, p)
            for (blobs, build), rows, fraction in batches:
                stored = store.submit(blobs)
                if pending is not None:
                    yield built(pending)
                pending = (build, stored)
                n += rows
                if progress:
                    progress(done_before + int(size * fraction), total, n)
            done_before += size
        if pending is not None:
            last, pending = pending, None
            yield built(last)
    finally:
        if pending is not None:
            pending[1]()  # let the writes in flight finish before the store is closed


def _from_columns(batch: columnar.Batch) -> Converted:
    def build(paths: list[str]) -> pa.Table:
        columns = {**batch.columns, "images_raw": batch.images_raw(paths)}
        return pa.table([columns[f.name] for f in NORM_SCHEMA], schema=NORM_SCHEMA)

    return batch.blobs, build


def _from_rows(f: Path, records: list[Record], p: Plan) -> Converted:
    samples = []
    blobs: list[hub.Blob] = []
    for rec in records:
        try:
            sample = hub.to_sample(rec.value, p.fmt, p.keys)
        except hub.SampleError as exc:
            where = "row" if p.parquet else "line"
            raise IngestError(
                f"{f}: sample {rec.index} ({where} {rec.line}): {exc}. Fix that sample or "
                "remove it, then ingest again."
            ) from None
        blobs.extend(r for r in sample[1] if isinstance(r, hub.Blob))
        samples.append(sample)

    def build(paths: list[str]) -> pa.Table:
        for blob, path in zip(blobs, paths, strict=True):
            blob.path, blob.data = path, b""
        rows = RowNormaliser(len(samples) + 1)
        for orig_id, refs, turns, task, extra, present in samples:
            images = [r if isinstance(r, str) else r.path for r in refs]
            rows.add((orig_id, images, turns, task, extra, present))
        return rows.table()

    return [b.data for b in blobs], build
