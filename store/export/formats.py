"""How each manifest format spells one sample, as a DuckDB expression over the export snapshot.

The snapshot (built in `store.export.manifest`) has `orig_id VARCHAR`, `imgs VARCHAR[]` (paths as
they will be written), `turns STRUCT(role VARCHAR, content VARCHAR)[]` (with `<image>` tokens
already fixed), `task VARCHAR`, and the source's other keys: `rest` (a JSON object of the
sample's unmodelled keys, minus the ones this format writes) and `tx` (JSON[], each turn's
unmodelled keys, e.g. ms-swift `loss`), both NULL for the usual sample that has none. Building
each line in SQL keeps a 665K-sample export in DuckDB's vectorised engine instead of 665K
Python dicts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from store.ids import id_line_sql

# JSON arrays: every row carries a ",\n" prefix and the writer drops it from the first row.
ROW_SEP = ",\n"


@dataclass(frozen=True)
class Format:
    name: str
    ext: str
    array: bool  # a JSON array ("[\n" rows "\n]\n") rather than one record per line
    line_sql: str
    help: str
    keys: tuple[str, ...] = ()  # top-level keys it writes: a source key of the same name yields


def null_patch(keys: tuple[str, ...]) -> str:
    """A JSON merge patch deleting `keys` (RFC 7396: a null value removes the key)."""
    return json.dumps(dict.fromkeys(keys))


# The task family travels with the sample when it has one; trainers ignore keys they do not map.
_TASK = """ || CASE WHEN task IS NULL THEN '' ELSE ',"task":' || to_json(task) END"""

# The source's other keys go after ours: `rest` is an object's text, so drop its braces.
_REST = """ || CASE WHEN rest IS NULL OR rest = '{}' THEN ''
                 ELSE ',' || substr(rest, 2, length(rest) - 2) END"""


def _turns_json(turn_sql: str, keys: tuple[str, ...]) -> str:
    """JSON array of turns built by `turn_sql` (a struct of t); turns with extra keys get them
    merged in after ours (a source turn key we write is dropped, ours wins)."""
    patch = null_patch(keys)
    return (
        f"CASE WHEN tx IS NULL THEN to_json(list_transform(turns, lambda t: {turn_sql})) "
        f"ELSE '[' || array_to_string(list_transform(turns, lambda t, i: json_merge_patch("
        f"to_json({turn_sql}), json_merge_patch(coalesce(tx[i], '{{}}'), '{patch}'))), ',') "
        "|| ']' END"
    )


_MESSAGES = _turns_json("{'role': t.role, 'content': t.content}", ("role", "content"))
# One sample as ms-swift and ShareGPT both write it; they differ only in how samples are joined.
_MESSAGES_SAMPLE = f"""'{{"id":' || to_json(orig_id) || ',"messages":' || {_MESSAGES}
            || ',"images":' || to_json(imgs){_TASK}{_REST} || '}}'"""
_MESSAGES_COLUMNS = ("id", "messages", "images", "task")
_LLAVA_TURNS = _turns_json(
    "{'from': CASE t.role WHEN 'user' THEN 'human' WHEN 'assistant' THEN 'gpt' ELSE t.role END, "
    "'value': t.content}",
    ("from", "value"),
)

FORMATS: dict[str, Format] = {
    "llava": Format(
        "llava",
        ".json",
        True,
        f"""'{ROW_SEP}' || '{{"id":' || to_json(orig_id)
            || CASE len(imgs) WHEN 0 THEN '' WHEN 1 THEN ',"image":' || to_json(imgs[1])
               ELSE ',"image":' || to_json(imgs) END
            || ',"conversations":' || {_LLAVA_TURNS}{_TASK}{_REST} || '}}'""",
        "LLaVA instruction JSON: id, image (string, list, or absent), conversations from/value",
        ("id", "image", "conversations", "task"),
    ),
    "swift": Format(
        "swift",
        ".jsonl",
        False,
        f"{_MESSAGES_SAMPLE} || chr(10)",
        "ms-swift JSONL: messages role/content with <image> tokens, images list",
        _MESSAGES_COLUMNS,
    ),
    "sharegpt": Format(
        "sharegpt",
        ".json",
        True,
        f"'{ROW_SEP}' || {_MESSAGES_SAMPLE}",
        "LLaMA-Factory ShareGPT multimodal JSON + dataset_info.json beside it",
        _MESSAGES_COLUMNS,
    ),
    "ids": Format(
        "ids",
        ".txt",
        False,
        id_line_sql("orig_id"),
        "one original sample id a line (JSON-quoted when plain text would lose it)",
    ),
    # Not lines: store/export/parquet.py writes these rows as Hub-style Parquet, images embedded.
    "parquet": Format(
        "parquet",
        ".parquet",
        False,
        "{'id': orig_id, 'imgs': imgs, 'src_imgs': src_imgs, 'turns': turns, 'task': task}",
        "Hub-style Parquet: id, images list<struct<bytes, path>> embedded, messages (TRL typed "
        "content), task",
    ),
}


def llamafactory_entry(file_name: str, llava: bool = False) -> dict[str, Any]:
    """The `dataset_info.json` entry LLaMA-Factory needs to read a multimodal file: ShareGPT
    messages (role/content) or LLaVA conversations (from/value)."""
    if llava:
        columns = {"messages": "conversations", "images": "image"}
        names = ("from", "value", "human", "gpt")
    else:
        columns = {"messages": "messages", "images": "images"}
        names = ("role", "content", "user", "assistant")
    tags = dict(zip(("role_tag", "content_tag", "user_tag", "assistant_tag"), names, strict=True))
    tags["system_tag"] = "system"
    return {"file_name": file_name, "formatting": "sharegpt", "columns": columns, "tags": tags}


def sharegpt_dataset_info(entry: str, file_name: str) -> dict[str, Any]:
    """The whole `dataset_info.json` for one ShareGPT file registered as `entry`."""
    return {entry: llamafactory_entry(file_name)}


def merge_dataset_info(existing_text: str | None, entry: dict) -> str:
    """Add or replace our entry in a dataset_info.json that may already list other datasets."""
    data = {}
    if existing_text:
        try:
            data = json.loads(existing_text)
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
    data.update(entry)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
