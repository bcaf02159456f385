"""Read an exported manifest back (LLaVA JSON, ms-swift JSONL, LLaMA-Factory ShareGPT) with its
typed sidecar: the one reader the fine-tune and the command printers use.

Key names, role names and `dataset_info.json` entries are the ingest specs' (store.ingest.formats),
so a manifest reads back exactly as `thresher ingest` would read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from store.errors import ThresherError
from store.ingest.formats import (
    IMAGE_TOKEN,
    TURN_EXTRA,
    SampleError,
    Spec,
    detect,
    llava_spec,
    sharegpt_source,
    swift_spec,
    to_sample,
)
from store.ingest.readers import Progress, iter_records

SIDECAR_SUFFIX = ".meta.json"


@dataclass(frozen=True)
class Sidecar:
    """What an export recorded beside its manifest (`<manifest>.meta.json`); empty when absent.

    A whole-dataset export has no run: a fine-tune on it is the "full data" baseline.
    """

    export_id: str | None = None
    format: str | None = None
    dataset: str | None = None
    dataset_id: int | None = None
    n_full: int | None = None  # samples in the whole dataset it was exported from
    selection_run_id: str | None = None
    selection: str | None = None  # only with a run
    method: str | None = None  # the selection run's method
    image_root: str | None = None  # what relative image paths are relative to
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, meta: dict[str, Any]) -> Sidecar:
        ds = meta.get("dataset")
        if not isinstance(ds, dict):
            ds = {"name": ds} if ds else {}
        run = meta.get("run")
        run_id = run.get("run_id") if isinstance(run, dict) else run
        return cls(
            export_id=meta.get("export_id"),
            format=meta.get("format"),
            dataset=ds.get("name"),
            dataset_id=ds.get("dataset_id"),
            n_full=ds.get("n_samples"),
            selection_run_id=run_id,
            selection=meta.get("selection") if run_id else None,
            method=run.get("method") if isinstance(run, dict) else None,
            image_root=meta.get("image_root") or meta.get("media_dir"),
            raw=dict(meta),
        )

    @classmethod
    def beside(cls, manifest: Path) -> Sidecar:
        path = sidecar_path(manifest)
        if not path.exists():
            return cls()
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError, AttributeError) as exc:
            raise ThresherError(
                f"{path}: unreadable export sidecar ({exc}); re-export the manifest"
            ) from exc


def sidecar_path(manifest: Path) -> Path:
    """`<file>.meta.json`, the name `thresher export` writes."""
    return manifest.with_name(manifest.name + SIDECAR_SUFFIX)


@dataclass(frozen=True)
class ManifestSample:
    """One training sample: chat turns (with `<image>` tokens where images go) and image paths."""

    id: str
    turns: tuple[tuple[str, str], ...]  # (role, content); role is user | assistant | system
    images: tuple[str, ...] = ()
    sample_id: int | None = None  # the catalog id when the export recorded it
    task: str | None = None  # task family when the export recorded it
    no_loss: tuple[int, ...] = ()  # assistant turns (0-based among them) marked "loss": false


@dataclass(frozen=True)
class Manifest:
    path: Path
    format: str  # llava | swift | sharegpt
    examples: list[ManifestSample]
    sidecar: Sidecar
    relative_images: bool = False  # some image path is written relative to the manifest


def _spec(path: Path, first: object) -> tuple[str, Spec]:
    """(our format name, the ingest spec that reads it)."""
    kind = detect(path, first, {})
    if kind == "sharegpt":
        return "sharegpt", sharegpt_source(path, None, {}).spec
    if kind == "llava":
        return "llava", llava_spec({})
    if kind == "swift":
        # A JSON array of messages is LLaMA-Factory's layout; one object a line is ms-swift's.
        return ("swift" if path.suffix == ".jsonl" else "sharegpt"), swift_spec({})
    raise ThresherError(f"{path}: a {kind} file is not a training manifest; export one")


def _resolve_image(raw: str, roots: list[Path], where: str) -> str:
    p = Path(raw).expanduser()
    if p.is_absolute():
        if p.exists():
            return str(p)
    else:
        for root in roots:
            if (root / p).exists():
                return str((root / p).resolve())
    raise ThresherError(
        f"{where}: image {raw!r} not found (looked in {', '.join(str(r) for r in roots) or '/'}); "
        "fix the path or re-export the manifest"
    )


def _no_loss(turns: list[tuple[str, str]], extra_json: str | None, where: str) -> tuple[int, ...]:
    """Indices (among the assistant turns) of ms-swift's `"loss": false` answers."""
    rests = json.loads(extra_json).get(TURN_EXTRA, []) if extra_json else []
    out, n_answers = [], 0
    for j, (role, _) in enumerate(turns):
        loss = rests[j].get("loss") if j < len(rests) else None
        if loss is not None and not isinstance(loss, bool):
            raise ThresherError(f"{where}: turn {j} has loss {loss!r}; use true or false")
        if role == "assistant":
            if loss is False:
                out.append(n_answers)
            n_answers += 1
    if not n_answers:
        raise ThresherError(f"{where}: no assistant turn to learn from")
    if len(out) == n_answers:
        raise ThresherError(
            f'{where}: every assistant turn has "loss": false; nothing to learn from'
        )
    return tuple(out)


def read_manifest(path: str | Path) -> Manifest:
    """Read a LLaVA JSON, ms-swift JSONL or LLaMA-Factory ShareGPT manifest into samples.

    Roles, keys and tags follow a `dataset_info.json` entry beside the file when there is one.
    Relative image paths resolve against the manifest's folder, then the sidecar's image root.
    """
    path = Path(path).expanduser().resolve()
    if path.suffix == ".txt" or path.name.endswith(".ids"):
        raise ThresherError(
            f"{path} is an id list; fine-tuning needs the samples themselves: "
            "export with --format llava, swift or sharegpt"
        )
    if not path.exists():
        raise ThresherError(f"manifest {path} does not exist; export one with `thresher export`")
    sidecar = Sidecar.beside(path)
    roots = [path.parent] + ([Path(sidecar.image_root)] if sidecar.image_root else [])
    fmt, spec = "sharegpt", None
    examples: list[ManifestSample] = []
    relative = False
    for rec in iter_records(path, Progress(path.stat().st_size)):
        where = f"{path}:{rec.line}" if path.suffix == ".jsonl" else f"{path}[{rec.index}]"
        if spec is None:
            fmt, spec = _spec(path, rec.value)
        try:
            parts = to_sample(rec.value, spec)
        except SampleError as exc:
            raise ThresherError(f"{where}: {exc}") from None
        raw_imgs, turns = parts.images, parts.turns
        if not parts.present:
            raise ThresherError(
                f"{where}: no {spec.conv_key!r} list of turns; is this a Thresher export?"
            )
        no_loss = _no_loss(turns, parts.extra_json, where)
        images = tuple(_resolve_image(r, roots, where) for r in raw_imgs)
        relative = relative or any(not Path(r).is_absolute() for r in raw_imgs)
        n_tokens = sum(c.count(IMAGE_TOKEN) for _, c in turns)
        if n_tokens and n_tokens != len(images):
            raise ThresherError(
                f"{where}: {n_tokens} <image> tokens but {len(images)} images; fix the sample"
            )
        value = rec.value if isinstance(rec.value, dict) else {}
        catalog_id = value.get("sample_id")
        examples.append(
            ManifestSample(
                parts.orig_id or f"{path.name}[{rec.index}]",
                tuple(turns),
                images,
                catalog_id if isinstance(catalog_id, int) else None,
                parts.task,
                no_loss,
            )
        )
    if not examples:
        raise ThresherError(f"{path}: the manifest holds no samples")
    return Manifest(path, fmt, examples, sidecar, relative)
