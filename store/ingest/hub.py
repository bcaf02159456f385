"""The shapes dataset hubs and trainers publish: detection, and one record -> one sample.

- `cauldron`: `images: list<struct<bytes, path>>` + `texts: list<struct<user, assistant, source>>`
  (HuggingFaceM4/the_cauldron); the images come first, so `<image>` tokens are prepended.
- `llava`: `id`, `image` (a path, `struct<bytes, path>`, or a list of either) and
  `conversations: list<struct<from, value>>` (LLaVA-OneVision-Data).
- `swift`: `messages` with text content and `images` holding bytes or data URLs.
- `trl` / `openai` / `qwen`: `messages` whose content is a list of typed parts. TRL's
  `{"type": "image"}` placeholders take the `images` column in order; OpenAI's
  `{"type": "image_url", "image_url": {"url": ...}}` and Qwen-VL's `{"type": "image",
  "image": ...}` carry their own source (a path, a URL or a data URL). One reader takes all three
  part kinds; the name records what the data is.

Every image part becomes an `<image>` token where it stood. Images whose bytes are embedded are
returned as `Blob`s for the caller to store (store/images.py) and replace by their paths.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from store.ingest import formats as F

HUB_FORMATS = ("cauldron", "trl", "openai", "qwen")  # shapes only this module reads
# Formats the hub reader also takes when the data embeds images or comes from Parquet shards.
CONVERTED = ("llava", "swift", *HUB_FORMATS)
TYPED = ("trl", "openai", "qwen")
IMAGE_PART_TYPES = ("image", "image_url", "input_image")
SampleError = F.SampleError


@dataclass
class Blob:
    """Image bytes waiting to be stored; `path` is set once they are."""

    data: bytes
    path: str = ""


Ref = str | Blob  # a path or URL as written, or embedded bytes


# ---------------------------------------------------------------- detection


def _struct_fields(t: pa.DataType) -> set[str]:
    """Field names of a struct, or of the struct inside a list (of lists) of structs."""
    while pa.types.is_list(t) or pa.types.is_large_list(t):
        t = t.value_type
    return {t.field(i).name for i in range(t.num_fields)} if pa.types.is_struct(t) else set()


def _field_type(t: pa.DataType, name: str) -> pa.DataType | None:
    while pa.types.is_list(t) or pa.types.is_large_list(t):
        t = t.value_type
    if pa.types.is_struct(t) and t.get_field_index(name) >= 0:
        return t.field(name).type
    return None


def detect_schema(schema: pa.Schema) -> str | None:
    """The shape a Parquet schema has, or None (then it is a table that needs --map)."""
    names = set(schema.names)
    if "texts" in names and {"user", "assistant"} <= _struct_fields(schema.field("texts").type):
        return "cauldron"
    if "messages" in names:
        msg = schema.field("messages").type
        if {"role", "content"} <= _struct_fields(msg):
            content = _field_type(msg, "content")
            typed = content is not None and (
                pa.types.is_list(content) or pa.types.is_large_list(content)
            )
            return "trl" if typed else "swift"
    if "conversations" in names and {"from", "value"} <= _struct_fields(
        schema.field("conversations").type
    ):
        return "llava"
    return None


def embeds(value: object) -> bool:
    """Whether an image value carries its bytes (struct with bytes, data URL, raw bytes)."""
    if isinstance(value, (bytes, bytearray)):
        return True
    if isinstance(value, str):
        return value.startswith("data:")
    if isinstance(value, dict):
        return value.get("bytes") is not None or embeds(value.get("url"))
    if isinstance(value, list):
        return any(embeds(v) for v in value)
    return False


def _part_kind(messages: object) -> str | None:
    """trl / openai / qwen from the first typed content list, None if every content is text."""
    if not isinstance(messages, list):
        return None
    kind = None
    for msg in messages:
        content = msg.get("content") if isinstance(msg, dict) else None
        if not isinstance(content, list):
            continue
        kind = kind or "trl"
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") in ("image_url", "input_image"):
                return "openai"
            if part.get("type") == "image" and part.get("image") is not None:
                return "qwen"
    return kind


def detect_record(rec: object, mapping: dict[str, str]) -> tuple[str | None, bool]:
    """(shape, needs this module) from a first JSON record; (None, False) when unknown."""
    if not isinstance(rec, dict):
        return None, False
    if "image" in mapping and embeds(rec.get(mapping["image"])):
        return ("llava" if "conversations" in rec else "swift"), True
    texts = rec.get("texts")
    if isinstance(texts, list) and texts and isinstance(texts[0], dict) and "user" in texts[0]:
        return "cauldron", True
    if "messages" in rec:
        kind = _part_kind(rec["messages"])
        if kind:
            return kind, True
        return "swift", embeds(rec.get("images"))
    if "conversations" in rec:
        return "llava", embeds(rec.get("image")) or embeds(rec.get("images"))
    return None, False


# ---------------------------------------------------------------- images


def _data_url(url: str) -> Blob:
    head, sep, payload = url.partition(",")
    if not sep or ";base64" not in head:
        raise SampleError(f"a data URL {url[:40]!r}... is not base64 (data:image/...;base64,...)")
    return Blob(_b64(payload))


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise SampleError(f"embedded image bytes are not valid base64 ({exc})") from None


def image_refs(value: object) -> list[Ref]:
    """Every image in an image field: paths/URLs as written, embedded bytes as Blobs."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [r for item in value for r in image_refs(item)]
    if isinstance(value, (bytes, bytearray)):
        return [Blob(bytes(value))]
    if isinstance(value, str):
        if value.startswith("data:"):
            return [_data_url(value)]
        return [value[len("file://") :] if value.startswith("file://") else value]
    if isinstance(value, dict):
        data = value.get("bytes")
        if isinstance(data, (bytes, bytearray)):
            return [Blob(bytes(data))]
        if isinstance(data, str) and data:  # JSON exports of Hub rows write bytes as base64
            return [Blob(_b64(data))]
        for key in ("path", "url", "image_url", "image"):
            if isinstance(value.get(key), (str, dict)):
                return image_refs(value[key])
        if data is None and value.get("path") is None and set(value) <= {"bytes", "path"}:
            return []  # a null image struct: a text-only row
    raise SampleError(
        f"an image entry is {type(value).__name__} {str(value)[:60]!r}; expected a path, a URL, "
        "a data URL or {bytes, path}"
    )


# ---------------------------------------------------------------- records -> samples

Sample = tuple[str | None, list[Ref], list[tuple[str, str]], str | None, str | None, bool]


def _orig_id(obj: dict, key: str) -> str | None:
    raw = obj.get(key)
    if isinstance(raw, str) and raw:
        return raw
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return str(raw)
    if raw not in (None, ""):
        raise SampleError(f"{key!r} is {type(raw).__name__}; expected a string or number")
    return None


def _extra(obj: dict, known: set[str], turn_rests: list[dict] | None = None) -> str | None:
    extra = {k: v for k, v in obj.items() if k not in known}
    if turn_rests and any(turn_rests):
        extra[F.TURN_EXTRA] = turn_rests
    if not extra:
        return None
    return json.dumps(extra, ensure_ascii=False, default=_json_default)


def _json_default(value: object) -> object:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def _content(content: object, i: int, pending: list[Ref], refs: list[Ref]) -> str:
    """A message's content as text with `<image>` tokens; its images are appended to `refs`."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise SampleError(f"turn {i} content is {type(content).__name__}; expected text or parts")
    pieces = []
    for j, part in enumerate(content):
        if isinstance(part, str):
            pieces.append(part)
            continue
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            pieces.append(part.get("text") or "")
        elif kind in IMAGE_PART_TYPES:
            assert isinstance(part, dict)
            source = part.get("image_url") if kind != "image" else part.get("image")
            if source is None and kind == "image":
                # TRL: placeholders take the images column in order. One with no image left
                # still becomes a token: the sample is flagged image_token_mismatch.
                if pending:
                    refs.append(pending.pop(0))
            else:
                found = image_refs(source)
                if len(found) != 1:
                    raise SampleError(f"turn {i} part {j} ({kind}) names no image")
                refs.append(found[0])
            pieces.append(F.IMAGE_TOKEN)
        else:
            raise SampleError(
                f"turn {i} part {j} has type {kind!r}; expected text, image or image_url "
                "(video and audio parts are not read)"
            )
    return "\n".join(pieces)


@dataclass
class Keys:
    """Column names of one shape, after --map."""

    id: str = "id"
    image: str = "images"
    conv: str = "messages"
    task: str = "task"


def keys_for(fmt: str, mapping: dict[str, str]) -> Keys:
    keys = Keys()
    if fmt == "llava":
        keys.image, keys.conv = "image", "conversations"
    elif fmt == "cauldron":
        keys.conv = "texts"
    keys.id = mapping.get("id", keys.id)
    keys.image = mapping.get("image", keys.image)
    keys.conv = mapping.get("conversation", keys.conv)
    keys.task = mapping.get("task", keys.task)
    return keys


def _task(obj: dict, keys: Keys) -> str | None:
    task = obj.get(keys.task)
    return task if isinstance(task, str) and task else None


def to_sample(obj: object, fmt: str, keys: Keys) -> Sample:
    """(orig_id, image refs, [(role, content)], task, extra_json, had_conversation)."""
    if not isinstance(obj, dict):
        raise SampleError(f"the sample is a {type(obj).__name__}; expected an object")
    orig_id = _orig_id(obj, keys.id)
    conv = obj.get(keys.conv)
    known = {keys.id, keys.image, keys.conv, keys.task}
    if fmt == "cauldron":
        return _cauldron(obj, keys, orig_id, conv, known)
    refs: list[Ref] = []
    column = image_refs(obj.get(keys.image))
    turns: list[tuple[str, str]] = []
    rests: list[dict] = []
    if fmt == "llava":
        role_key, content_key, roles = "from", "value", F.LLAVA_ROLES
        refs = column
    else:
        role_key, content_key, roles = "role", "content", F.LLAVA_ROLES
    if conv is not None and not isinstance(conv, list):
        raise SampleError(f"{keys.conv!r} is {type(conv).__name__}; expected a list of turns")
    for i, turn in enumerate(conv or []):
        if not isinstance(turn, dict):
            raise SampleError(f"turn {i} is {type(turn).__name__}; expected an object")
        role = roles.get(turn.get(role_key))  # type: ignore[arg-type]
        if role is None:
            raise SampleError(
                f"turn {i} has role {turn.get(role_key)!r}; expected one of "
                f"{', '.join(map(repr, roles))}"
            )
        content = turn.get(content_key)
        if fmt == "llava":
            if content is not None and not isinstance(content, str):
                raise SampleError(f"turn {i} value is {type(content).__name__}; expected text")
            text = content or ""
        else:
            text = _content(content, i, column, refs)
        turns.append((role, text))
        rests.append({k: v for k, v in turn.items() if k not in (role_key, content_key)})
    if fmt != "llava":
        refs.extend(column)  # images no placeholder claimed (plain ms-swift: all of them)
    extra = _extra(obj, known, rests)
    return orig_id, refs, turns, _task(obj, keys), extra, conv is not None


def _cauldron(obj: dict, keys: Keys, orig_id: str | None, texts: object, known: set) -> Sample:
    if texts is not None and not isinstance(texts, list):
        raise SampleError(f"{keys.conv!r} is {type(texts).__name__}; expected a list of turns")
    refs = image_refs(obj.get(keys.image))
    turns: list[tuple[str, str]] = []
    sources: list[Any] = []
    for i, pair in enumerate(texts or []):
        if not isinstance(pair, dict):
            raise SampleError(f"texts entry {i} is {type(pair).__name__}; expected an object")
        turns.append(("user", pair.get("user") or ""))
        turns.append(("assistant", pair.get("assistant") or ""))
        sources.append(pair.get("source"))
    if refs and turns and not any(F.IMAGE_TOKEN in c for _, c in turns):
        # The Cauldron puts the images before the first question; say so with LLaVA tokens.
        turns[0] = ("user", (F.IMAGE_TOKEN + "\n") * len(refs) + turns[0][1])
    task = _task(obj, keys)
    named = [s for s in sources if isinstance(s, str) and s]
    if task is None and named:
        task = named[0]  # the Cauldron's `source` names the sub-dataset: its task family
    extra_obj = dict(obj)
    if len(set(named)) > 1:
        extra_obj["sources"] = sources  # only when a sample mixes them; one is kept as task
    return orig_id, refs, turns, task, _extra(extra_obj, known), texts is not None
