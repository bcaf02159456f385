"""What each input format calls its fields, and how one source record becomes one Thresher sample.

LLaVA, ms-swift and LLaMA-Factory ShareGPT are all "a list of turns plus a list of images" under
different key names, so one `Spec` (key names + role names) drives a single normaliser; the
`table` format adds question/answer columns for data that has no conversation at all.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from store.errors import IngestError

# cauldron / trl / openai / qwen: Hub and chat shapes read by hub.py (via shards.py).
FORMATS = ("auto", "llava", "swift", "sharegpt", "table", "cauldron", "trl", "openai", "qwen")
IMAGE_TOKEN = "<image>"
# Keys a --map may set for the table format (and override for the conversation formats).
MAPPING_KEYS = ("id", "image", "question", "answer", "conversation", "task", "system")

# LLaMA-Factory's defaults for `formatting: sharegpt` (data/README.md of LLaMA-Factory).
SHAREGPT_DEFAULT_COLUMNS = {"messages": "conversations"}
SHAREGPT_DEFAULT_TAGS = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "system_tag": "system",
}


class SampleError(Exception):
    """One record cannot be read as a sample; the driver adds file, sample index and line."""


@dataclass
class Spec:
    """Key names of one format, plus how its role names map onto user/assistant/system."""

    fmt: str
    id_key: str | None = "id"
    image_key: str | None = "image"
    conv_key: str | None = "conversations"
    role_key: str = "from"
    content_key: str = "value"
    roles: dict[str, str] = field(default_factory=dict)
    system_key: str | None = None  # a column holding a system prompt (ShareGPT `columns.system`)
    task_key: str | None = "task"
    question_key: str | None = None  # table format without a conversation column
    answer_key: str | None = None
    options: dict = field(default_factory=dict)  # saved in datasets.options

    @functools.cached_property
    def known(self) -> frozenset[str]:
        keys = (
            self.id_key,
            self.image_key,
            self.conv_key,
            self.system_key,
            self.task_key,
            self.question_key,
            self.answer_key,
        )
        return frozenset(k for k in keys if k)

    @property
    def required(self) -> tuple[str, ...]:
        """Fields without which the data cannot be this format (checked across all rows)."""
        if self.conv_key:
            return (self.conv_key,)
        return tuple(k for k in (self.question_key, self.answer_key) if k)


LLAVA_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}
SWIFT_ROLES = {"user": "user", "assistant": "assistant", "system": "system"}


def _apply_mapping(spec: Spec, mapping: dict[str, str]) -> Spec:
    renames = {
        "id": "id_key",
        "image": "image_key",
        "conversation": "conv_key",
        "task": "task_key",
        "system": "system_key",
        "question": "question_key",
        "answer": "answer_key",
    }
    for key, column in mapping.items():
        setattr(spec, renames[key], column)
    return spec


def llava_spec(mapping: dict[str, str]) -> Spec:
    return _apply_mapping(Spec("llava", roles=dict(LLAVA_ROLES)), mapping)


def swift_spec(mapping: dict[str, str]) -> Spec:
    spec = Spec(
        "swift",
        image_key="images",
        conv_key="messages",
        role_key="role",
        content_key="content",
        roles=dict(SWIFT_ROLES),
    )
    return _apply_mapping(spec, mapping)


def table_spec(path: Path, mapping: dict[str, str]) -> Spec:
    if not mapping:
        raise IngestError(
            f"{path}: the table format needs a column mapping. Pass --map id=COL --map image=COL "
            "--map question=COL --map answer=COL (or --map conversation=COL)."
        )
    if "conversation" not in mapping and not {"question", "answer"} <= mapping.keys():
        raise IngestError(
            f"{path}: the column mapping {mapping} names neither a conversation column nor both "
            "question and answer columns. Add --map question=COL --map answer=COL."
        )
    spec = Spec(
        "table",
        id_key=None,
        image_key=None,
        conv_key=None,
        role_key="role",
        content_key="content",
        roles=dict(LLAVA_ROLES),
        task_key=None,
    )
    spec = _apply_mapping(spec, mapping)
    spec.options = {"mapping": mapping}
    return spec


def check_mapping(mapping: dict[str, str] | None) -> dict[str, str]:
    mapping = dict(mapping or {})
    unknown = sorted(set(mapping) - set(MAPPING_KEYS))
    if unknown:
        raise IngestError(
            f"unknown mapping key(s) {', '.join(unknown)}; a mapping maps "
            f"{', '.join(MAPPING_KEYS)} to column names (--map question=prompt)."
        )
    for key, column in mapping.items():
        if not isinstance(column, str) or not column:
            raise IngestError(f"mapping {key}= needs a column name (--map {key}=COLUMN).")
    return mapping


# ---------------------------------------------------------------- LLaMA-Factory ShareGPT


@dataclass
class ShareGPTSource:
    data_file: Path
    info_file: Path | None
    key: str | None
    spec: Spec


def _load_info(info_file: Path) -> dict:
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IngestError(
            f"{info_file}: cannot read dataset_info.json ({exc}). Fix the JSON and ingest again."
        ) from None
    if not isinstance(info, dict):
        raise IngestError(
            f"{info_file}: dataset_info.json must be a JSON object of dataset entries, found "
            f"{type(info).__name__}."
        )
    return info


def sharegpt_source(path: Path, dataset_key: str | None, mapping: dict[str, str]) -> ShareGPTSource:
    """Resolve `path` (a dataset_info.json, or a data file beside one) to a data file and spec."""
    if path.name == "dataset_info.json":
        info_file = path
        info = _load_info(info_file)
        if dataset_key is None:
            if len(info) != 1:
                raise IngestError(
                    f"{info_file} describes {len(info)} datasets ({', '.join(sorted(info))}); "
                    "choose one with --dataset-key NAME."
                )
            dataset_key = next(iter(info))
        if dataset_key not in info:
            raise IngestError(
                f"{info_file} has no dataset {dataset_key!r}; it has {', '.join(sorted(info))}."
            )
        entry = info[dataset_key]
        if not isinstance(entry, dict) or not entry.get("file_name"):
            raise IngestError(
                f"{info_file}: dataset {dataset_key!r} has no local file_name (hub datasets are "
                "not read by Thresher); download it and add file_name."
            )
        data_file = info_file.parent / entry["file_name"]
    else:
        data_file = path
        info_file = path.parent / "dataset_info.json"
        entry = None
        if info_file.exists():
            info = _load_info(info_file)
            matches = [
                k
                for k, v in info.items()
                if isinstance(v, dict) and Path(str(v.get("file_name", ""))).name == path.name
            ]
            if dataset_key is not None:
                if dataset_key not in info:
                    raise IngestError(
                        f"{info_file} has no dataset {dataset_key!r}; it has "
                        f"{', '.join(sorted(info))}."
                    )
                matches = [dataset_key]
            if matches:
                dataset_key = matches[0]
                entry = info[dataset_key]
        if entry is None:
            info_file = None
            entry = {}  # LLaMA-Factory's defaults
    if entry.get("formatting", "sharegpt") != "sharegpt":
        raise IngestError(
            f"{info_file}: dataset {dataset_key!r} uses formatting "
            f"{entry.get('formatting')!r}; Thresher reads ShareGPT multimodal only (convert it "
            "or use --format table with --map)."
        )
    if data_file.is_dir():
        raise IngestError(
            f"{data_file}: file_name points at a folder; point it at one .json/.jsonl file."
        )
    columns = {**SHAREGPT_DEFAULT_COLUMNS, **(entry.get("columns") or {})}
    tags = {**SHAREGPT_DEFAULT_TAGS, **(entry.get("tags") or {})}
    roles = {tags["user_tag"]: "user", tags["assistant_tag"]: "assistant"}
    roles[tags["system_tag"]] = "system"
    spec = Spec(
        "sharegpt",
        id_key="id",
        image_key=columns.get("images"),
        conv_key=columns["messages"],
        role_key=tags["role_tag"],
        content_key=tags["content_tag"],
        roles=roles,
        system_key=columns.get("system"),
    )
    spec = _apply_mapping(spec, mapping)
    spec.options = {
        "dataset_key": dataset_key,
        "dataset_info": str(info_file) if info_file else None,
        "columns": columns,
        "tags": tags,
    }
    return ShareGPTSource(data_file, info_file, dataset_key, spec)


def detect(path: Path, first: object, mapping: dict[str, str]) -> str:
    """Guess the format from the file name and the first record."""
    if path.name == "dataset_info.json":
        return "sharegpt"
    if path.suffix.lower() in (".parquet", ".pq") or {"question", "answer"} & mapping.keys():
        return "table"
    beside = path.parent / "dataset_info.json"
    if beside.exists():
        try:
            info = json.loads(beside.read_text(encoding="utf-8"))
            if isinstance(info, dict) and any(
                isinstance(v, dict) and Path(str(v.get("file_name", ""))).name == path.name
                for v in info.values()
            ):
                return "sharegpt"
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            pass
    if isinstance(first, dict):
        if "conversations" in first:
            return "llava"
        if "messages" in first:
            return "swift"
    keys = ", ".join(sorted(first)[:8]) if isinstance(first, dict) else type(first).__name__
    raise IngestError(
        f"{path}: cannot tell the format from the first sample (keys: {keys}). Pass --format "
        "llava|swift|sharegpt, or --format table with --map question=COL --map answer=COL."
    )


# ---------------------------------------------------------------- one record -> one sample


def _images(value: object) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict) and isinstance(item.get("path"), str):
                out.append(item["path"])
            else:
                raise SampleError(
                    f"an image entry is {type(item).__name__} {str(item)[:40]!r}; expected a "
                    "path string"
                )
        return out
    raise SampleError(
        f"the image field is {type(value).__name__}; expected a path or a list of paths"
    )


TURN_EXTRA = "__turns__"  # key in samples.extra: per-turn extra keys, aligned with the turns


def _turns(value: object, spec: Spec) -> tuple[list[tuple[str, str]], list[dict]]:
    """The (role, content) turns, and each turn's other keys (ms-swift `loss`, a `weight`, ...)."""
    if isinstance(value, str) and spec.fmt == "table":  # a column of JSON text
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise SampleError(f"the conversation column is not valid JSON ({exc.msg})") from None
    if not isinstance(value, list):
        raise SampleError(f"{spec.conv_key!r} is {type(value).__name__}; expected a list of turns")
    turns, rests = [], []
    role_key, content_key, roles = spec.role_key, spec.content_key, spec.roles
    modelled = {role_key, content_key} | ({"from", "value"} if spec.fmt == "table" else set())
    for i, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise SampleError(f"turn {i} is {type(turn).__name__}; expected an object")
        raw_role = turn.get(role_key)
        if raw_role is None and spec.fmt == "table":  # tables may carry either convention
            raw_role = turn.get("from")
        role = roles.get(raw_role)  # type: ignore[arg-type]
        if role is None:
            raise SampleError(
                f"turn {i} has role {raw_role!r} under key {role_key!r}; expected one of "
                f"{', '.join(map(repr, roles))} (wrong --format, or set the tags in "
                "dataset_info.json)"
            )
        content = turn.get(content_key)
        if content is None and spec.fmt == "table":
            content = turn.get("value")
        if content is None:
            content = ""
        elif not isinstance(content, str):
            raise SampleError(
                f"turn {i} content is {type(content).__name__}; expected text (lists of "
                "typed parts are read with --format trl, openai or qwen)"
            )
        turns.append((role, content))
        rests.append({k: v for k, v in turn.items() if k not in modelled})
    return turns, rests


def _cell_text(value: object, key: str | None) -> str:
    """A table's question or answer cell as text: a string, or a number written as text.

    A dict or list is refused (not stored as its Python repr), as the conversation formats do.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise SampleError(
        f"the {key!r} column holds a {type(value).__name__} {json.dumps(value, default=str)[:40]}; "
        "expected text. Map a text column with --map, or give whole conversations as a list of "
        "turns with --map conversation=COL"
    )


class SampleParts(NamedTuple):
    """One source record read by a `Spec` (a tuple, so `a, b, ... = to_sample(...)` still works)."""

    orig_id: str | None
    images: list[str]  # as written in the source (not resolved)
    turns: list[tuple[str, str]]  # (role, content)
    task: str | None
    extra_json: str | None  # the source's unmodelled keys (and per-turn keys under TURN_EXTRA)
    present: bool  # the format's required field was there


def to_sample(obj: object, spec: Spec) -> SampleParts:
    """The parts of one record: id, raw image paths, turns, task, other keys, required-field flag."""
    if not isinstance(obj, dict):
        raise SampleError(f"the sample is a JSON {type(obj).__name__}; expected an object")
    orig_id = None
    if spec.id_key:
        raw_id = obj.get(spec.id_key)
        if isinstance(raw_id, str) and raw_id:
            orig_id = raw_id
        elif isinstance(raw_id, (int, float)) and not isinstance(raw_id, bool):
            orig_id = str(raw_id)
        elif raw_id not in (None, ""):
            raise SampleError(
                f"{spec.id_key!r} is {type(raw_id).__name__}; expected a string or number"
            )
    images = _images(obj.get(spec.image_key)) if spec.image_key else []
    present = True
    rests: list[dict] = []
    if spec.conv_key:
        conv = obj.get(spec.conv_key)
        present = conv is not None
        turns, rests = _turns(conv, spec) if present else ([], [])
    else:
        question = obj.get(spec.question_key)
        answer = obj.get(spec.answer_key)
        present = question is not None or answer is not None
        question = _cell_text(question, spec.question_key)
        answer = _cell_text(answer, spec.answer_key)
        if images and IMAGE_TOKEN not in question:
            # Plain tables carry no image tokens; write the LLaVA convention so exports and
            # the image/token check agree.
            question = (IMAGE_TOKEN + "\n") * len(images) + question
        turns = [("user", question), ("assistant", answer)]
    if spec.system_key:
        system = obj.get(spec.system_key)
        if isinstance(system, str) and system:
            turns.insert(0, ("system", system))
            rests.insert(0, {})
    task = None
    if spec.task_key:
        raw_task = obj.get(spec.task_key)
        task = raw_task if isinstance(raw_task, str) and raw_task else None
    known = spec.known
    extra = {k: v for k, v in obj.items() if k not in known}
    if any(rests):  # kept so exports can write them back on the same turns
        extra[TURN_EXTRA] = rests
    extra_json = json.dumps(extra, ensure_ascii=False, default=str) if extra else None
    return SampleParts(orig_id, images, turns, task, extra_json, present)
