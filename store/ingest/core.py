"""`ingest()`: read a dataset file, normalise and flag every sample, then merge it into the
catalog in one transaction (stable sample ids, nothing changed on failure).

Two readers produce the same normalised columns: DuckDB's JSON reader for clean LLaVA /
ms-swift / ShareGPT files (fast.py), and a streaming Python reader for everything else and for
every error message (readers.py + formats.py + normalize.py). finish.py then adds ids, image
checks, flags and the fingerprint column-wise.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from itertools import chain
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from store.catalog import Catalog
from store.errors import IngestError
from store.images import ImageBytes, ImageStore
from store.ingest import fast, remote, shards
from store.ingest import formats as F
from store.ingest.finish import FLAGS, LONG_TEXT_CHARS, SAMPLE_SCHEMA, Finisher, Stage
from store.ingest.images import CHECK_MODES, ImageChecker, check_bytes
from store.ingest.merge import Source, merge
from store.ingest.normalize import RowNormaliser
from store.ingest.readers import Progress, Record, first_char, iter_records
from store.ingest.staging import FileStage, MemoryStage

__all__ = ["FLAGS", "LONG_TEXT_CHARS", "SAMPLE_SCHEMA", "IngestProgress", "IngestReport", "ingest"]

BATCH = 16384  # rows per Arrow batch on the Python path: bounds the dicts alive at once
FINISH_ROWS = 8192  # rows finished and staged at a time when shards stream
ENGINES = ("auto", "python")


@dataclass(frozen=True)
class IngestProgress:
    """One progress event: `phase` is "read" (done/total in bytes) or "write" (samples)."""

    phase: str
    done: int
    total: int
    samples: int


@dataclass
class IngestReport:
    dataset: str
    dataset_id: int
    format: str
    source_path: str
    image_root: str
    n_samples: int
    n_new: int
    n_updated: int  # already known (same orig_id) and changed in content
    n_unchanged: int
    n_removed: int  # known before, absent from this file: deleted from the catalog
    n_flagged: int  # samples with at least one flag
    flags: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    fingerprint: str = ""
    engine: str = "python"  # which reader ran: duckdb (fast path) or python
    # Embedded images (store/images.py): files this ingest wrote, and ones already stored.
    images_written: int = 0
    images_reused: int = 0
    image_bytes_written: int = 0
    images_fetched: int = 0  # --fetch-remote: URLs downloaded into the store
    fetch_failed: dict[str, str] = field(default_factory=dict)  # url -> why (first 20)

    @property
    def samples_per_s(self) -> float:
        return self.n_samples / self.seconds if self.seconds > 0 else 0.0


def _default_name(path: Path) -> str:
    return path.stem or path.name


def _resolve_root(image_root: str | os.PathLike[str] | None, default: Path) -> str:
    root = Path(image_root).expanduser() if image_root is not None else default
    root = root.resolve()
    if not root.is_dir():
        raise IngestError(
            f"image root {root} is not a folder. Pass --image-root DIR, the folder that image "
            "paths in the file are relative to."
        )
    return os.path.normpath(str(root))


def ingest(
    catalog: Catalog,
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    name: str | None = None,
    fmt: str = "auto",
    image_root: str | os.PathLike[str] | None = None,
    mapping: dict[str, str] | None = None,
    check_images: str = "header",
    dataset_key: str | None = None,
    progress: Callable[[IngestProgress], None] | None = None,
    engine: str = "auto",
    fetch_remote: bool = False,
) -> IngestReport:
    """Ingest one dataset into the catalog as dataset `name` (default: the file's stem).

    `path` is a data file, a folder or glob of shards (or a list of files), read in name order as
    one dataset; Hub-style Parquet and typed chat content go through shards.py / hub.py, which
    store embedded images in the workspace's images/ folder (store/images.py).

    Re-ingesting under the same name keeps the sample id of every orig_id seen before. The whole
    file is read and checked before the catalog is touched; a fatal problem raises IngestError
    (file, sample, line, fix) and leaves the catalog as it was.

    `fetch_remote`: download images named by http(s) URLs into the image store (remote.py)
    instead of flagging them `remote_image`.

    `engine`: "auto" tries DuckDB's JSON reader first (LLaVA, ms-swift, ShareGPT) and falls
    back to the Python reader; "python" skips DuckDB. The report says which one ran.
    """
    t0 = time.perf_counter()
    if engine not in ENGINES:
        raise IngestError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}.")
    if fmt not in F.FORMATS:
        raise IngestError(f"unknown format {fmt!r}; choose one of {', '.join(F.FORMATS)}.")
    if check_images not in CHECK_MODES:
        raise IngestError(
            f"unknown image check {check_images!r}; choose one of {', '.join(CHECK_MODES)}."
        )
    mapping = F.check_mapping(mapping)
    if isinstance(path, (list, tuple)) and len(path) == 1:
        path = path[0]
    plan = shards.plan(path, fmt, mapping)
    if plan is not None:
        return _ingest_plan(
            catalog, plan, name, image_root, mapping, check_images, progress, t0, fetch_remote
        )
    if not isinstance(path, (str, os.PathLike)):
        raise IngestError("no files to ingest: pass a data file, a folder or a glob of shards.")
    src = Path(path).expanduser()
    if src.is_dir() and (src / "dataset_info.json").exists():
        src = src / "dataset_info.json"
    if not src.exists():
        raise IngestError(f"{src}: no such file. Check the path and try again.")
    if src.is_dir():
        raise IngestError(
            f"{src} is a folder; point ingest at the data file (.json, .jsonl, .parquet) or a "
            "LLaMA-Factory dataset_info.json."
        )
    src = src.resolve()

    data_file, default_root = src, src.parent
    if fmt == "sharegpt" or (fmt == "auto" and src.name == "dataset_info.json"):
        fmt = "sharegpt"
        sg = F.sharegpt_source(src, dataset_key, mapping)
        data_file = sg.data_file.resolve()
        if not data_file.exists():
            raise IngestError(f"{data_file}: no such file (named by {sg.info_file}).")
        default_root = sg.info_file.parent if sg.info_file else data_file.parent
        spec = sg.spec
        name = name or sg.key or _default_name(data_file)
    root = _resolve_root(image_root, default_root)

    size = data_file.stat().st_size
    bytes_read = Progress(size)
    records: Iterator[Record] = iter_records(data_file, bytes_read)
    first = next(records, None)
    if fmt == "auto":
        if first is None and data_file.suffix.lower() not in (".parquet", ".pq"):
            raise IngestError(f"{data_file}: holds no samples; nothing to ingest.")
        fmt = F.detect(data_file, first.value if first else None, mapping)
        if fmt == "sharegpt":
            sg = F.sharegpt_source(data_file, dataset_key, mapping)
            spec = sg.spec
            name = name or sg.key
    if fmt == "llava":
        spec = F.llava_spec(mapping)
    elif fmt == "swift":
        spec = F.swift_spec(mapping)
    elif fmt == "table":
        spec = F.table_spec(data_file, mapping)
    name = name or _default_name(data_file)
    if first is None:
        raise IngestError(f"{data_file}: holds no samples; nothing to ingest.")

    norm = None
    used = "python"
    if engine != "python" and fmt in ("llava", "swift", "sharegpt"):
        if progress:
            progress(IngestProgress("read", 0, size, 0))
        norm = fast.read(str(data_file), spec, json_lines=first_char(data_file) == "{")
        used = "duckdb" if norm is not None else "python"
        if norm is not None:
            records.close()  # type: ignore[attr-defined]  # the Python reader's open file
    unseen: set[str] = set()
    if norm is None:
        norm, unseen = _read_rows(
            data_file, spec, fmt, mapping, first, records, bytes_read, progress
        )
    n = norm.num_rows
    if not pc.any(norm.column("present")).as_py():
        raise IngestError(
            f"{data_file}: none of the {n} samples has the field(s) {', '.join(spec.required)} "
            f"that the {fmt} format needs. Check --format, or map the columns with --map."
        )
    if unseen:
        raise IngestError(
            f"{data_file}: no row has the mapped column(s) {', '.join(sorted(unseen))}. Check the "
            "--map COLUMN names against the file's columns."
        )
    if progress:
        progress(IngestProgress("read", size, size, n))

    options = {**spec.options, "check_images": check_images}
    if mapping:
        options["mapping"] = mapping
    options = {**options, "engine": used}
    source = Source(name, fmt, str(data_file), root, options)
    store = (
        ImageStore(catalog.workspace.images_dir, check=_checker(check_images))
        if fetch_remote
        else None
    )
    try:
        return _commit(
            catalog,
            source,
            [(norm, {})],
            MemoryStage(SAMPLE_SCHEMA),
            check_images,
            progress,
            t0,
            store,
        )
    finally:
        if store is not None:
            store.close()


def _commit(
    catalog: Catalog,
    source: Source,
    chunks: Iterable[tuple[pa.Table, dict[str, int]]],
    stage: Stage,
    check_images: str,
    progress: Callable[[IngestProgress], None] | None,
    t0: float,
    fetch_into: ImageStore | None = None,
) -> IngestReport:
    """Finish the normalised chunks (flags, ids, paths) into `stage`, then merge them into the
    catalog in one transaction; the report of the ingest. Each chunk comes with the verdicts of
    images already checked (embedded images, judged from memory as they were stored).

    `fetch_into`: --fetch-remote, image URLs are downloaded into this store."""
    checker = ImageChecker(check_images)
    finisher = Finisher(source.image_root, checker, stage)
    if fetch_into is not None:
        store = fetch_into
        finisher.fetch = lambda norm: remote.fetch(norm, store, finisher.fetched)
    try:
        for norm, known in chunks:
            finisher.add(norm, known)
        done = finisher.done()
        # Hand the reading's Arrow buffers back before DuckDB takes its share (70 MB at 100K
        # Hub samples): the peak is then the larger of the two, not their sum.
        pa.default_memory_pool().release_unused()
        if progress:
            progress(IngestProgress("write", 0, done.n_samples, done.n_samples))
        merged = merge(catalog, source, done)
    finally:
        checker.close()
        stage.discard()
    n = done.n_samples
    if progress:
        progress(IngestProgress("write", n, n, n))
    fetched = finisher.fetched
    return IngestReport(
        dataset=source.name,
        format=source.fmt,
        source_path=source.path,
        image_root=source.image_root,
        engine=source.options["engine"],
        n_samples=n,
        n_flagged=done.n_flagged,
        flags=done.flag_counts,
        fingerprint=done.fingerprint,
        **asdict(merged),
        seconds=time.perf_counter() - t0,
        images_fetched=len(fetched.paths),
        fetch_failed=dict(sorted(fetched.failed.items())[:20]),
    )


def _checker(check_images: str) -> Callable[[ImageBytes], int] | None:
    """How the image store judges bytes it stores, for --check-images (None: not at all)."""
    return None if check_images == "none" else functools.partial(check_bytes, mode=check_images)


def _ingest_plan(
    catalog: Catalog,
    plan: shards.Plan,
    name: str | None,
    image_root: str | os.PathLike[str] | None,
    mapping: dict[str, str],
    check_images: str,
    progress: Callable[[IngestProgress], None] | None,
    t0: float,
    fetch_remote: bool,
) -> IngestReport:
    """Hub-style sources: stream the shards, storing embedded images and staging finished rows
    in a file (memory holds a few batches, whatever the folder's size), then commit as usual."""
    root = _resolve_root(image_root, plan.default_root)
    total = sum(plan.sizes)
    if progress:
        progress(IngestProgress("read", 0, total, 0))

    def on_batch(done: int, total: int, rows: int) -> None:
        if progress:
            progress(IngestProgress("read", done, total, rows))

    options: dict = {"files": len(plan.files), "first_file": str(plan.files[0])}
    options["check_images"] = check_images
    if mapping:
        options["mapping"] = mapping
    options["engine"] = "python"
    source = Source(name or plan.name, plan.fmt, plan.source, root, options)
    store = ImageStore(catalog.workspace.images_dir, check=_checker(check_images))
    stream = shards.read(plan, store, on_batch)
    try:
        stage = FileStage(catalog.workspace.root, SAMPLE_SCHEMA)
        chunks = _rechunk(_checked(plan, stream), FINISH_ROWS)
        report = _commit(
            catalog,
            source,
            chunks,
            stage,
            check_images,
            progress,
            t0,
            store if fetch_remote else None,
        )
    finally:
        stream.close()  # wait for the image writes in flight
        store.close()
    report.images_written = store.stats.written
    report.images_reused = store.stats.reused
    report.image_bytes_written = store.stats.bytes_written
    return report


def _checked(
    plan: shards.Plan, chunks: Iterator[tuple[pa.Table, dict[str, int]]]
) -> Iterator[tuple[pa.Table, dict[str, int]]]:
    """The chunks as they come; at the end, refuse a source without samples or conversations."""
    n, had_conversation = 0, False
    for norm, known in chunks:
        n += norm.num_rows
        had_conversation = had_conversation or bool(pc.any(norm.column("present")).as_py())
        yield norm, known
    if n == 0:
        raise IngestError(f"{plan.source}: holds no samples; nothing to ingest.")
    if not had_conversation:
        raise IngestError(
            f"{plan.source}: none of the {n} samples has the field "
            f"{plan.keys.conv!r} that the {plan.fmt} format needs. Check --format, or map the "
            "columns with --map."
        )


def _rechunk(
    chunks: Iterable[tuple[pa.Table, dict[str, int]]], rows: int
) -> Iterator[tuple[pa.Table, dict[str, int]]]:
    """Chunks of at least `rows` rows (the last one fewer): finishing pays per chunk."""
    tables: list[pa.Table] = []
    known: dict[str, int] = {}
    n = 0
    for table, verdicts in chunks:
        tables.append(table)
        known.update(verdicts)
        n += table.num_rows
        if n >= rows:
            yield pa.concat_tables(tables), known
            tables, known, n = [], {}, 0
    if tables:
        yield pa.concat_tables(tables), known


def _read_rows(
    data_file: Path,
    spec: F.Spec,
    fmt: str,
    mapping: dict[str, str],
    first: Record,
    records: Iterator[Record],
    bytes_read: Progress,
    progress: Callable[[IngestProgress], None] | None,
) -> tuple[pa.Table, set[str]]:
    """The Python path: stream records, normalise each; returns the table and unseen columns."""
    rows = RowNormaliser(BATCH)
    # Table columns named by --map that no row has are a typo, not missing data.
    unseen = set(mapping.values()) if fmt == "table" else set()
    size = bytes_read.total
    for rec in chain([first], records):
        if unseen and isinstance(rec.value, dict):
            unseen.difference_update(rec.value.keys() & unseen)
        try:
            sample = F.to_sample(rec.value, spec)
        except F.SampleError as exc:
            raise IngestError(
                f"{data_file}: sample {rec.index} (line {rec.line}): {exc}. Fix that sample "
                "or remove it, then ingest again."
            ) from None
        rows.add(sample)
        if progress and rec.index % BATCH == 0:
            progress(IngestProgress("read", bytes_read.done, size, rec.index))
    return rows.table(), unseen
