"""Export a run's effective selection (or a whole dataset) as a training manifest, atomically, with a sidecar.

One catalog connection pins what the export sees: the decision log up to its current last seq,
then a temporary snapshot of the chosen samples with their `<image>` tokens checked and fixed.
Lines are built by DuckDB and streamed in Arrow batches into a temp file beside the target;
the file, its sidecar and the `exports` row appear together or not at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from store import faults, runs
from store.atomic import remove_stale_temps
from store.decisions import (
    decision_stats,
    effective_sql,
    run_dir_for,
    selection_column,
)
from store.errors import NotFound, ThresherError
from store.export.formats import (
    FORMATS,
    ROW_SEP,
    Format,
    merge_dataset_info,
    null_patch,
    sharegpt_dataset_info,
)
from store.export.parquet import write_parquet
from store.failures import translating
from store.ingest.formats import TURN_EXTRA
from store.sql import literal
from store.tags import sidecar_tags

# Flags that mean "the image is not usable": skipped unless include_flagged.
IMAGE_FLAGS = ("missing_image", "corrupt_image", "path_escape", "remote_image")
BATCH_ROWS = 65_536
_replace = os.replace  # one name to swap in tests that simulate a failing disk


def _publish(moves: list[tuple[Path, Path]]) -> None:
    """Rename temp files into place; if one rename fails, take back the ones already made."""
    done: list[Path] = []
    try:
        for src, dst in moves:
            _replace(src, dst)
            done.append(dst)
    except BaseException:
        for dst in done:
            dst.unlink(missing_ok=True)
        raise


@dataclass
class ExportResult:
    export_id: str
    path: Path
    sidecar_path: Path
    format: str
    n_exported: int
    n_selected: int
    skipped: dict[str, int]
    n_fixed: int
    sha256: str
    meta: dict[str, Any] = field(repr=False)
    extra_paths: list[Path] = field(default_factory=list)


def _snapshot_sql(run_sql: str | None, include_flagged: bool) -> str:
    """The samples to export with a `status`: ok, fixed (tokens prepended) or a skip reason."""
    # A run can name samples that a later re-ingest removed: they are counted, not silently lost.
    chosen = (
        "SELECT s.*, false AS gone FROM samples s WHERE s.dataset_id = $dataset_id"
        if run_sql is None
        else f"SELECT s.* EXCLUDE (sample_id), e.sample_id, s.sample_id IS NULL AS gone "
        f"FROM ({run_sql}) e LEFT JOIN samples s "
        "ON s.sample_id = e.sample_id AND s.dataset_id = $dataset_id WHERE e.effective"
    )
    flag_check = (
        "NULL"
        if include_flagged
        else "list_extract(list_intersect(flags, "
        + "[" + ", ".join(f"'{f}'" for f in IMAGE_FLAGS) + "]), 1)"
    )  # fmt: skip
    return f"""
        WITH chosen AS ({chosen}),
        parsed AS (
            SELECT sample_id, orig_id, images, task, gone, extra,
                   json_transform(conversation, '[{{"role":"VARCHAR","content":"VARCHAR"}}]') AS turns0,
                   coalesce(list_sum(list_transform(turns0, lambda t:
                       (length(coalesce(t.content, '')) -
                        length(replace(coalesce(t.content, ''), '<image>', ''))) // 7)), 0) AS n_tok,
                   len(images) AS n_img,
                   list_position(list_transform(turns0, lambda t: t.role), 'user') AS first_user,
                   {flag_check} AS bad_flag
            FROM chosen
        )
        SELECT sample_id, orig_id, images, task, extra,
               CASE WHEN gone THEN 'not_in_dataset'
                    WHEN bad_flag IS NOT NULL THEN bad_flag
                    WHEN turns0 IS NULL THEN 'unreadable_conversation'
                    WHEN n_tok = n_img THEN 'ok'
                    WHEN n_tok = 0 AND first_user IS NOT NULL THEN 'fixed'
                    ELSE 'image_token_mismatch' END AS status,
               CASE WHEN n_tok = 0 AND n_img > 0 THEN
                    list_transform(turns0, lambda t, i: {{'role': t.role,
                        'content': CASE WHEN i = first_user
                                   THEN repeat('<image>' || chr(10), n_img) || t.content
                                   ELSE t.content END}})
                    ELSE turns0 END AS turns
        FROM parsed
    """


def _source_keys_sql(form: Format, keep: bool) -> str:
    """`rest` and `tx` (see store.export.formats) for this format, or NULLs."""
    if not (keep and form.keys):
        return "NULL::VARCHAR AS rest, NULL::JSON[] AS tx"
    patch = null_patch((*form.keys, TURN_EXTRA))
    return (
        f"CASE WHEN extra IS NULL THEN NULL ELSE json_merge_patch(extra, '{patch}')::VARCHAR END "
        f"AS rest, CASE WHEN json_exists(extra, '$.{TURN_EXTRA}') "
        f"THEN json_extract(extra, '$.{TURN_EXTRA}[*]') END AS tx"
    )


def _relative_dirs(con: Any, base: Path) -> None:
    """Register `_export_reldirs(dir, rel)`: each image folder outside `base`, relative to it."""
    dirs = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT regexp_extract(p, '^(.*)/[^/]*$', 1) FROM "
            "(SELECT unnest(images) AS p FROM _export_snapshot WHERE status IN ('ok', 'fixed')) "
            "WHERE NOT starts_with(p, $prefix)",
            {"prefix": str(base).rstrip("/") + "/"},
        ).fetchall()
    ]
    rel = [os.path.relpath(d or "/", base) for d in dirs]
    con.register("_export_reldirs", pa.table({"dir": dirs, "rel": rel}))


def _write_lines(reader: pa.RecordBatchReader, fh: BinaryIO, digest: Any, array: bool) -> int:
    """Stream the `line` column's bytes straight from Arrow buffers; returns rows written."""
    n = 0

    def put(data: bytes | memoryview) -> None:
        fh.write(data)
        digest.update(data)

    if array:
        put(b"[\n")
    for batch in reader:
        col = batch.column(0)
        if len(col) == 0:
            continue
        if not pa.types.is_large_string(col.type):
            col = col.cast(pa.large_string())  # int64 offsets: one layout to read, any size
        _, offs, values = col.buffers()
        first, last = col.offset, col.offset + len(col)
        offsets = memoryview(offs).cast("q")
        data = memoryview(values)[offsets[first] : offsets[last]]
        if array and n == 0:
            data = data[len(ROW_SEP) :]
        put(data)
        n += len(col)
    if array:
        put(b"\n]\n")
    return n


def _atomic_text(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave a half-written temp
        raise
    return tmp


def _default_name(dataset: str, run_id: str | None, selection: str | None, fmt: str) -> str:
    parts = [dataset] + ([run_id, selection or "default"] if run_id else []) + [fmt]
    return "-".join(p.replace("/", "_").replace(" ", "_") for p in parts)


def default_export_path(
    workspace: Any, dataset: str, run_id: str | None, selection: str | None, fmt: str
) -> Path:
    """Where an export goes when no path is given: the CLI's default and the TUI's prefilled one."""
    form = FORMATS[fmt]
    return workspace.exports_dir / (_default_name(dataset, run_id, selection, fmt) + form.ext)


@dataclass(frozen=True)
class _Dataset:
    dataset_id: int
    name: str
    fingerprint: str
    source_path: str
    n_samples: int
    image_root: str | None


@dataclass(frozen=True)
class _RunPart:
    """What a run contributes: its effective selection as SQL, pinned at the decision log's end."""

    run_id: str
    meta: dict[str, Any]
    sql: str
    params: dict[str, Any]
    selection: str
    n_log: int
    last_seq: int | None
    # (overrides applied, overrides that changed the choice, algorithmic, effective, run samples)
    stats: tuple[int, int, int, int, int]


@dataclass(frozen=True)
class _Counts:
    n_selected: int  # samples the run (or dataset) names
    n_ok: int  # exported: ok + fixed
    n_fixed: int  # `<image>` tokens prepended
    skipped: dict[str, int]  # reason -> count


def _check_args(fmt: str, path_style: str, run_id: str | None, selection: str | None) -> Format:
    if fmt not in FORMATS:
        raise ThresherError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if path_style not in ("absolute", "relative"):
        raise ThresherError(f"--paths must be absolute or relative, not {path_style!r}.")
    if selection is not None and run_id is None:
        raise ThresherError("a selection belongs to a run: pass --run as well as --selection.")
    return FORMATS[fmt]


def _find_dataset(catalog: Any, con: Any, name: str) -> _Dataset:
    rows = con.execute(
        "SELECT dataset_id, fingerprint, source_path, n_samples, image_root FROM datasets "
        "WHERE name = ?",
        [name],
    ).fetchall()
    if not rows:
        known = [r[0] for r in con.execute("SELECT name FROM datasets ORDER BY name").fetchall()]
        raise NotFound(
            f"no dataset {name!r} in {catalog.workspace.root}; known: {', '.join(known) or 'none'}."
        )
    dataset_id, fingerprint, source_path, n_samples, image_root = rows[0]
    return _Dataset(dataset_id, name, fingerprint, source_path, n_samples, image_root)


def _run_part(catalog: Any, con: Any, run_id: str, selection: str | None, ds: _Dataset) -> _RunPart:
    run_dir = run_dir_for(catalog, con, run_id)
    meta = runs.read_run_json(run_dir)
    if meta.get("dataset_id") not in (None, ds.dataset_id) and meta.get("dataset") != ds.name:
        raise ThresherError(
            f"run {run_id} selected from dataset {meta.get('dataset')!r}, not {ds.name!r}; "
            f"export it with --dataset {meta.get('dataset')}."
        )
    n_log, last_seq = decision_stats(con, run_id)
    sql, params = effective_sql(run_dir, selection, upto_seq=last_seq or 0)
    stats = con.execute(
        f"SELECT count(*) FILTER (WHERE override IS NOT NULL), "
        f"count(*) FILTER (WHERE override IS DISTINCT FROM algorithmic AND override IS NOT NULL), "
        f"count(*) FILTER (WHERE algorithmic), count(*) FILTER (WHERE effective), count(*) "
        f"FROM ({sql})",
        params,
    ).fetchall()[0]
    sel_name = selection_column(meta, selection)[0]
    return _RunPart(run_id, meta, sql, params, sel_name, n_log, last_seq, tuple(stats))


def _snapshot(con: Any, ds: _Dataset, run: _RunPart | None, include_flagged: bool) -> _Counts:
    """The temp table `_export_snapshot`: the chosen samples with a status (ok, fixed, a skip)."""
    named: dict[str, Any] = {"dataset_id": ds.dataset_id}
    if run is not None:
        named.update(run.params)
    # Sorted once here (before the lines exist, so the sort moves small rows); the line query
    # then streams in this order because DuckDB keeps insertion order for un-ORDERed scans.
    con.execute("SET preserve_insertion_order = true")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _export_snapshot AS "
        + _snapshot_sql(run.sql if run else None, include_flagged)
        + " ORDER BY sample_id",
        named,
    )
    status_counts = dict(
        con.execute("SELECT status, count(*) FROM _export_snapshot GROUP BY 1").fetchall()
    )
    n_selected = sum(status_counts.values())
    n_fixed = status_counts.pop("fixed", 0)
    n_ok = status_counts.pop("ok", 0) + n_fixed
    return _Counts(n_selected, n_ok, n_fixed, dict(sorted(status_counts.items())))


def _target_path(
    catalog: Any, out_path: Any, ds: _Dataset, run: _RunPart | None, form: Format
) -> Path:
    name = _default_name(
        ds.name, run.run_id if run else None, run.selection if run else None, form.name
    )
    if out_path is None:
        target = catalog.workspace.exports_dir / (name + form.ext)
    else:
        target = Path(out_path).expanduser().absolute()
        if target.is_dir():
            target = target / (name + form.ext)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target, (target.parent / "dataset_info.json",))
    return target


def _image_paths_sql(con: Any, rel_root: Path | None) -> tuple[str, str]:
    """(images expression, extra FROM item): paths as stored, or relative to `rel_root`."""
    if rel_root is None:
        return "images", ""
    _relative_dirs(con, rel_root)
    # Under the root (the usual case) a prefix cut; elsewhere ("../x") a lookup in one row
    # holding {folder: relative folder}, computed in Python once per folder.
    prefix = str(rel_root).rstrip("/") + "/"
    lit = literal(prefix)
    reldirs = (
        ", (SELECT map(list(dir), list(CASE WHEN rel = '.' THEN '' ELSE rel || '/' END)) "
        "AS reldir FROM _export_reldirs) m"
    )
    imgs = (
        f"list_transform(images, lambda p: CASE WHEN starts_with(p, {lit}) "
        f"THEN substr(p, {len(prefix) + 1}) ELSE "
        "reldir[regexp_extract(p, '^(.*)/[^/]*$', 1)] || regexp_extract(p, '[^/]*$') END)"
    )
    return imgs, reldirs


def _write_body(
    con: Any,
    line_query: str,
    tmp: Path,
    form: Format,
    n_ok: int,
    progress: Callable[[int, int], None] | None,
) -> str:
    """Stream the lines (or Parquet rows) into `tmp`, fsync it; returns the sha256."""
    digest = hashlib.sha256()
    with open(tmp, "wb") as fh:
        reader = con.sql(line_query).to_arrow_reader(BATCH_ROWS)
        rows = _progress(reader, n_ok, progress)
        if form.name == "parquet":  # images embedded: store/export/parquet.py
            n_written = write_parquet(rows, fh, digest)
        else:
            n_written = _write_lines(rows, fh, digest, form.array)
        fh.flush()
        os.fsync(fh.fileno())
    faults.point("export.written", tmp)
    if n_written != n_ok:
        raise ThresherError(f"export wrote {n_written} samples, expected {n_ok}")
    return digest.hexdigest()


def _sidecar(
    con: Any,
    *,
    export_id: str,
    form: Format,
    target: Path,
    tmp: Path,
    sha: str,
    created: datetime,
    path_style: str,
    rel_root: Path | None,
    include_flagged: bool,
    keep_extra: bool,
    ds: _Dataset,
    run: _RunPart | None,
    counts: _Counts,
) -> dict[str, Any]:
    """The `.meta.json` beside the manifest: what was exported, from what, under which decisions."""
    meta: dict[str, Any] = {
        "export_id": export_id,
        "format": form.name,
        "path": str(target),
        "sha256": sha,
        "bytes": tmp.stat().st_size,
        "path_style": path_style,
        "image_root": str(rel_root) if rel_root else None,
        "include_flagged": include_flagged,
        "source_keys": "kept" if keep_extra and form.keys else "dropped",
        "dataset": {
            "name": ds.name,
            "dataset_id": ds.dataset_id,
            "fingerprint": ds.fingerprint,
            "source_path": ds.source_path,
            "n_samples": ds.n_samples,
        },
        "run": None,
        "selection": run.selection if run else None,
        "counts": {
            "selected": counts.n_selected,
            "exported": counts.n_ok,
            "skipped": counts.skipped,
            "skipped_total": sum(counts.skipped.values()),
            "fixed_image_tokens": counts.n_fixed,
        },
        "decisions": None,
        "created_at": created.isoformat(timespec="seconds"),
    }
    if run is not None:
        n_applied, n_changed, n_algo, n_eff, n_run = run.stats
        rm = run.meta
        meta["run"] = {
            "run_id": run.run_id,
            "method": rm.get("method"),
            "params": rm.get("params"),
            "seed": rm.get("seed"),
            "created_at": rm.get("created_at"),
            "dataset_fingerprint": rm.get("dataset_fingerprint"),
            "fingerprint_matches": rm.get("dataset_fingerprint") in (None, ds.fingerprint),
            "n_samples": n_run,
            "algorithmic_selected": n_algo,
            "effective_selected": n_eff,
        }
        meta["decisions"] = {
            "applied": n_applied,
            "changed": n_changed,
            "log_entries": run.n_log,
            "last_seq": run.last_seq,
        }
    meta["tags"] = sidecar_tags(
        con, "SELECT sample_id, orig_id FROM _export_snapshot WHERE status IN ('ok', 'fixed')"
    )
    return meta


def _dataset_info_temp(target: Path) -> tuple[Path, Path]:
    """ShareGPT: (temp, final) of dataset_info.json with this manifest's entry merged in."""
    info_path = target.parent / "dataset_info.json"
    old = info_path.read_text(encoding="utf-8") if info_path.exists() else None
    if old is not None:
        try:
            json.loads(old)
        except ValueError as exc:
            raise ThresherError(
                f"{info_path} is not valid JSON ({exc}); fix or move it, then export again."
            ) from exc
    entry = sharegpt_dataset_info(target.stem, target.name)
    return _atomic_text(info_path, merge_dataset_info(old, entry)), info_path


def _record_and_publish(
    con: Any, row: list[Any], target: Path, moves: list[tuple[Path, Path]]
) -> None:
    """The `exports` row and the renames commit together: a failed rename rolls the row back."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("INSERT INTO exports VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        faults.point("export.publish", target)
        _publish(moves)
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@translating("writing the export", "out_path")
def export(
    catalog: Any,
    *,
    dataset: str,
    run_id: str | None = None,
    selection: str | None = None,
    fmt: str,
    out_path: str | os.PathLike[str] | None = None,
    path_style: str = "absolute",
    image_root: str | os.PathLike[str] | None = None,
    include_flagged: bool = False,
    keep_extra: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> ExportResult:
    """Write the manifest of `dataset` (or of `run_id`'s effective `selection`) in format `fmt`.

    `path_style="relative"` writes image paths relative to `image_root` (default: the dataset's
    own image root, so paths read as in the source); the sidecar records that root, which is what
    a trainer's image folder setting must point at.

    `keep_extra` writes the source's keys Thresher does not model back into each record (the
    sample's, e.g. ms-swift `objects`, and each turn's, e.g. `loss`), after the format's own keys;
    a source key with the name of one the format writes is dropped.

    Steps: check the arguments; find the dataset (and the run's effective selection, pinned at
    the decision log's last entry); snapshot the chosen samples; pick the target; stream the
    lines into a temp file; write the sidecar (and ShareGPT's dataset_info.json) as temps;
    insert the `exports` row and rename everything into place in one transaction.
    """
    form = _check_args(fmt, path_style, run_id, selection)
    with catalog.connect() as con:
        ds = _find_dataset(catalog, con, dataset)
        run = _run_part(catalog, con, run_id, selection, ds) if run_id is not None else None
        counts = _snapshot(con, ds, run, include_flagged)
        target = _target_path(catalog, out_path, ds, run, form)
        rel_root = None
        if path_style == "relative":
            rel_root = Path(image_root or ds.image_root or target.parent).expanduser().absolute()
        imgs, reldirs = _image_paths_sql(con, rel_root)
        line_query = (
            f"SELECT {form.line_sql} AS line FROM (SELECT orig_id, {imgs} AS imgs, images AS "
            "src_imgs, turns, task, "
            f"sample_id, {_source_keys_sql(form, keep_extra)} "
            f"FROM _export_snapshot{reldirs} WHERE status IN ('ok', 'fixed'))"
        )
        export_id = (
            datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
        )
        tmp = target.with_name(f".{target.name}.tmp-{export_id}")
        temps = [tmp]
        try:
            sha = _write_body(con, line_query, tmp, form, counts.n_ok, progress)
            created = datetime.now(timezone.utc)
            meta = _sidecar(
                con, export_id=export_id, form=form, target=target, tmp=tmp, sha=sha,
                created=created, path_style=path_style, rel_root=rel_root,
                include_flagged=include_flagged, keep_extra=keep_extra, ds=ds, run=run,
                counts=counts,
            )  # fmt: skip
            sidecar = target.with_name(target.name + ".meta.json")
            temps.append(_atomic_text(sidecar, json.dumps(meta, indent=2) + "\n"))
            extra: list[tuple[Path, Path]] = []
            if fmt == "sharegpt":
                extra.append(_dataset_info_temp(target))
                temps.append(extra[-1][0])
            row = [
                export_id, run_id, ds.dataset_id, run.selection if run else None, fmt,
                str(target), counts.n_ok, run.stats[0] if run else 0,
                run.last_seq if run else None, sha, created.replace(tzinfo=None),
            ]  # fmt: skip
            _record_and_publish(con, row, target, [(tmp, target), (temps[1], sidecar), *extra])
        finally:
            for t in temps:
                t.unlink(missing_ok=True)
    return ExportResult(
        export_id=export_id,
        path=target,
        sidecar_path=sidecar,
        format=fmt,
        n_exported=counts.n_ok,
        n_selected=counts.n_selected,
        skipped=counts.skipped,
        n_fixed=counts.n_fixed,
        sha256=sha,
        meta=meta,
        extra_paths=[dst for _, dst in extra],
    )


def _progress(
    reader: pa.RecordBatchReader, total: int, progress: Callable[[int, int], None] | None
):
    done = 0
    for batch in reader:
        yield batch
        done += batch.num_rows
        if progress:
            progress(done, total)
