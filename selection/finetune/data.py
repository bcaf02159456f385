"""Exported manifests into training examples, and the collator that renders them with the model's
chat template and masks every token except the assistant's answers."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store.errors import ThresherError

IMAGE_TOKEN = "<image>"
IGNORE_INDEX = -100

_ROLE_NAMES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}


@dataclass(frozen=True)
class Example:
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
    examples: list[Example]
    meta: dict[str, Any]  # the export sidecar (run, selection, ...), {} when there is none
    relative_images: bool = False  # some image path is written relative to the manifest


def sidecar_path(manifest: Path) -> Path | None:
    """The export's `.meta.json` sidecar: `<file>.meta.json` or `<stem>.meta.json` beside it."""
    for cand in (
        manifest.with_name(manifest.name + ".meta.json"),
        manifest.with_suffix(".meta.json"),
    ):
        if cand.exists():
            return cand
    return None


def read_sidecar(manifest: Path) -> dict[str, Any]:
    side = sidecar_path(manifest)
    if side is None:
        return {}
    try:
        return json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ThresherError(f"{side}: unreadable export sidecar ({exc}); re-export it") from exc


def export_link(meta: dict[str, Any]) -> dict[str, Any]:
    """From an export sidecar: the dataset it came from and the run/selection that chose it.

    A whole-dataset export has no run: a fine-tune on it is the "full data" baseline.
    """
    ds = meta.get("dataset")
    run = meta.get("run")
    if not isinstance(ds, dict):
        ds = {"name": ds} if ds else {}
    run_id = run.get("run_id") if isinstance(run, dict) else run
    return {
        "dataset": ds.get("name"),
        "dataset_id": ds.get("dataset_id"),
        "n_full": ds.get("n_samples"),
        "selection_run_id": run_id,
        "selection": meta.get("selection") if run_id else None,
        "method": run.get("method") if isinstance(run, dict) else None,
        "export_id": meta.get("export_id"),
    }


def _llamafactory_entry(manifest: Path) -> dict[str, Any] | None:
    """The dataset_info.json entry that registers this file, when one sits beside it."""
    info = manifest.parent / "dataset_info.json"
    if not info.exists():
        return None
    try:
        entries = json.loads(info.read_text())
    except json.JSONDecodeError as exc:
        raise ThresherError(f"{info}: not valid JSON ({exc})") from exc
    for entry in entries.values():
        if isinstance(entry, dict) and entry.get("file_name") == manifest.name:
            return entry
    return None


def _load_records(path: Path) -> list[tuple[str, dict]]:
    """(where, record) pairs; `where` names the line or index for error messages."""
    if not path.exists():
        raise ThresherError(f"manifest {path} does not exist; export one with `thresher export`")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        out = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append((f"{path}:{lineno}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise ThresherError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
        return out
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ThresherError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from exc
    if not isinstance(data, list):
        raise ThresherError(
            f"{path}: expected a JSON list of samples (LLaVA or ShareGPT), got {type(data).__name__}"
        )
    return [(f"{path}[{i}]", rec) for i, rec in enumerate(data)]


def _resolve_image(raw: str, roots: Sequence[Path], where: str) -> str:
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


def read_manifest(path: str | Path) -> Manifest:
    """Read a LLaVA JSON, ms-swift JSONL or LLaMA-Factory ShareGPT manifest into examples.

    Roles, keys and tags follow a `dataset_info.json` entry beside the file when there is one.
    Relative image paths resolve against the manifest's folder, then the sidecar's image root.
    """
    path = Path(path).expanduser().resolve()
    if path.suffix == ".txt" or path.name.endswith(".ids"):
        raise ThresherError(
            f"{path} is an id list; fine-tuning needs the samples themselves: "
            "export with --format llava, swift or sharegpt"
        )
    meta = read_sidecar(path)
    entry = _llamafactory_entry(path)
    columns = (entry or {}).get("columns", {})
    tags = (entry or {}).get("tags", {})
    msg_key = columns.get("messages")
    img_key = columns.get("images")
    role_tag = tags.get("role_tag")
    content_tag = tags.get("content_tag")
    role_map = dict(_ROLE_NAMES)
    for tag, ours in (
        ("user_tag", "user"),
        ("assistant_tag", "assistant"),
        ("system_tag", "system"),
    ):
        if tag in tags:
            role_map[tags[tag]] = ours
    roots = [path.parent]
    for root_key in ("image_root", "media_dir"):
        if meta.get(root_key):
            roots.append(Path(meta[root_key]))

    examples: list[Example] = []
    relative = False
    fmt = "sharegpt" if entry else None
    for where, rec in _load_records(path):
        if not isinstance(rec, dict):
            raise ThresherError(f"{where}: a sample must be a JSON object")
        key: str | None = msg_key or next(
            (k for k in ("messages", "conversations") if k in rec), None
        )
        if key is None or not isinstance(rec.get(key), list):
            raise ThresherError(
                f"{where}: no 'messages' or 'conversations' list; is this a Thresher export?"
            )
        if fmt is None:
            fmt = (
                "llava"
                if key == "conversations"
                else ("swift" if path.suffix == ".jsonl" else "sharegpt")
            )
        turns = []
        no_loss: list[int] = []  # indices among the assistant turns
        n_answers = 0
        for j, msg in enumerate(rec[key]):
            rt = role_tag or ("from" if "from" in msg else "role")
            ct = content_tag or ("value" if "value" in msg else "content")
            role: str | None = role_map.get(str(msg.get(rt, "")).lower()) or role_map.get(
                str(msg.get(rt, ""))
            )
            if role is None or not isinstance(msg.get(ct), str):
                raise ThresherError(
                    f"{where}: turn {j} has role {msg.get(rt)!r} / content of type "
                    f"{type(msg.get(ct)).__name__}; expected user/assistant/system with text"
                )
            turns.append((role, msg[ct]))
            loss = msg.get("loss")  # ms-swift: false = do not learn this answer
            if loss is not None and not isinstance(loss, bool):
                raise ThresherError(f"{where}: turn {j} has loss {loss!r}; use true or false")
            if role == "assistant":
                if loss is False:
                    no_loss.append(n_answers)
                n_answers += 1
        if not n_answers:
            raise ThresherError(f"{where}: no assistant turn to learn from")
        if len(no_loss) == n_answers:
            raise ThresherError(
                f'{where}: every assistant turn has "loss": false; nothing to learn from'
            )
        raw_imgs = rec.get(img_key) if img_key else rec.get("images", rec.get("image"))
        if raw_imgs is None:
            raw_imgs = []
        elif isinstance(raw_imgs, str):
            raw_imgs = [raw_imgs]
        images = tuple(_resolve_image(str(r), roots, where) for r in raw_imgs)
        relative = relative or any(not Path(str(r)).is_absolute() for r in raw_imgs)
        n_tokens = sum(c.count(IMAGE_TOKEN) for _, c in turns)
        if n_tokens and n_tokens != len(images):
            raise ThresherError(
                f"{where}: {n_tokens} <image> tokens but {len(images)} images; fix the sample"
            )
        sid = str(rec.get("id", rec.get("sample_id", where.rsplit("/", 1)[-1])))
        catalog_id = rec.get("sample_id")
        examples.append(
            Example(
                sid,
                tuple(turns),
                images,
                int(catalog_id) if isinstance(catalog_id, int) else None,
                rec.get("task") if isinstance(rec.get("task"), str) else None,
                tuple(no_loss),
            )
        )
    if not examples:
        raise ThresherError(f"{path}: the manifest holds no samples")
    return Manifest(path, fmt or "sharegpt", examples, meta, relative)


def chat_messages(example: Example) -> list[dict[str, Any]]:
    """The example as a processor chat: `<image>` tokens become image parts, in place.

    Images with no `<image>` token go before the first user turn's text, as LLaVA does.
    """
    explicit = any(IMAGE_TOKEN in c for _, c in example.turns)
    messages: list[dict[str, Any]] = []
    first_user = True
    for role, content in example.turns:
        parts: list[dict[str, Any]] = []
        if role == "user" and first_user and not explicit:
            parts += [{"type": "image"} for _ in example.images]
        if role == "user":
            first_user = False
        pieces = content.split(IMAGE_TOKEN)
        for k, piece in enumerate(pieces):
            if k > 0:
                parts.append({"type": "image"})
            # Whitespace around an <image> token is layout, not content (CONTRACTS: stripped).
            piece = piece.strip() if len(pieces) > 1 else piece
            if piece:
                parts.append({"type": "text", "text": piece})
        messages.append({"role": role, "content": parts})
    return messages


def _render(processor: Any, messages: list[dict[str, Any]], generation_prompt: bool = False) -> str:
    return processor.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )


def render_with_segments(processor: Any, example: Example) -> tuple[str, list[str]]:
    """The rendered chat and the text of each assistant turn as the template writes it.

    An assistant segment is what rendering turn i adds after the generation prompt: the answer
    plus the template's end-of-turn marker (so the model learns to stop). Templates that rewrite
    earlier turns when later ones arrive cannot be masked this way and get a clear error.
    """
    messages = chat_messages(example)
    full = _render(processor, messages)
    segments = []
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        if i == 0:
            raise ThresherError(
                f"sample {example.id}: starts with an assistant turn; nothing asks it"
            )
        prefix = _render(processor, messages[:i], generation_prompt=True)
        upto = _render(processor, messages[: i + 1])
        if not (upto.startswith(prefix) and full.startswith(upto)):
            raise ThresherError(
                f"sample {example.id}: the model's chat template is not prefix-stable (turn {i} "
                "renders differently once later turns exist), so assistant tokens cannot be "
                "located; train with a template that is, or single-turn samples"
            )
        # Trailing newlines after the end-of-turn marker are layout between turns.
        segments.append(upto[len(prefix) :].rstrip("\n"))
    return full, segments


def _find(haystack: list[int], needle: list[int], start: int) -> int:
    n, m = len(haystack), len(needle)
    first = needle[0]
    for i in range(start, n - m + 1):
        if haystack[i] == first and haystack[i : i + m] == needle:
            return i
    return -1


def assistant_labels(
    input_ids: list[int],
    segments: Sequence[list[int]],
    sample_id: str,
    no_loss: Collection[int] = (),
) -> list[int]:
    """Labels equal to `input_ids` on the assistant segments, IGNORE_INDEX everywhere else.

    Segments are located in order, each after the previous one. A tokenizer may merge a
    segment's first token with the text before it; then the rest of the segment is matched.
    Segments listed in `no_loss` (ms-swift's `"loss": false`) are located but not learned.
    """
    labels = [IGNORE_INDEX] * len(input_ids)
    cursor = 0
    for k, seg in enumerate(segments):
        for trimmed in (seg, seg[1:]):
            pos = _find(input_ids, trimmed, cursor) if trimmed else -1
            if pos >= 0:
                if k not in no_loss:
                    labels[pos : pos + len(trimmed)] = trimmed
                cursor = pos + len(trimmed)
                break
        else:
            raise ThresherError(
                f"sample {sample_id}: assistant turn {k} could not be located in the tokenized "
                "chat (the template and tokenizer disagree); report the model name"
            )
    return labels


def _load_image(path: str, max_pixels: int | None) -> Any:
    from PIL import Image

    try:
        with Image.open(path) as im:
            img = im.convert("RGB")
    except OSError as exc:
        raise ThresherError(
            f"image {path}: cannot be read ({exc}); fix or drop the sample"
        ) from exc
    if max_pixels and img.width * img.height > max_pixels:
        scale = (max_pixels / (img.width * img.height)) ** 0.5
        img = img.resize((max(1, int(img.width * scale)), max(1, int(img.height * scale))))
    return img


class Collator:
    """Turns a list of examples into one padded batch with assistant-only labels.

    The processor sees the whole micro-batch at once so each model family batches its own
    image tensors (Qwen2-VL's flat patches, Idefics3's padded tiles). Samples longer than
    `max_length` are dropped from the batch (not cut, which would break image tokens) and
    reported in `skipped`.
    """

    def __init__(self, processor: Any, max_length: int, image_max_pixels: int | None = None):
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.max_length = max_length
        self.image_max_pixels = image_max_pixels

    def encode(self, examples: Sequence[Example]) -> tuple[dict[str, Any], list[list[list[int]]]]:
        texts, seg_ids = [], []
        for ex in examples:
            text, segments = render_with_segments(self.processor, ex)
            texts.append(text)
            seg_ids.append(
                [self.tokenizer(s, add_special_tokens=False)["input_ids"] for s in segments]
            )
        images = [[_load_image(p, self.image_max_pixels) for p in ex.images] for ex in examples]
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        if any(images):
            kwargs["images"] = images
        # The chat template writes BOS and special tokens itself; the eval engine encodes the same
        # way, so training and evaluation see identical prompts.
        batch = dict(self.processor(**kwargs, add_special_tokens=False))
        return batch, seg_ids

    def __call__(self, examples: Sequence[Example]) -> tuple[dict[str, Any] | None, list[str]]:
        """(batch with `labels`, ids of skipped samples); batch is None when all were skipped."""
        import torch

        batch, seg_ids = self.encode(examples)
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        too_long = [i for i, n in enumerate(lengths) if n > self.max_length]
        skipped = [examples[i].id for i in too_long]
        if too_long:
            keep = [ex for i, ex in enumerate(examples) if i not in too_long]
            if not keep:
                return None, skipped
            batch, seg_ids = self.encode(keep)
            examples = keep
        labels = []
        mask = batch["attention_mask"]
        for row, (ex, segs) in enumerate(zip(examples, seg_ids, strict=True)):
            ids = batch["input_ids"][row].tolist()
            lab = assistant_labels(ids, segs, ex.id, ex.no_loss)
            labels.append(
                [x if m else IGNORE_INDEX for x, m in zip(lab, mask[row].tolist(), strict=True)]
            )
        batch["labels"] = torch.tensor(labels, dtype=torch.long)
        return batch, skipped
