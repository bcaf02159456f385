"""Writers for data in the shapes hubs and trainers publish (not the shapes Thresher writes).

Schemas copied from the datasets themselves: HuggingFaceM4/the_cauldron (images as
`list<struct<bytes, path>>`, `texts` as `list<struct<user, assistant, source>>`),
lmms-lab/LLaVA-OneVision-Data (`train-0000N-of-0000M.parquet`, `id`, `image: struct<bytes, path>`,
`conversations`, `data_source`), TRL's vision SFT sets such as HuggingFaceH4/llava-instruct-mix-vsft
(`messages: list<struct<content: list<struct<index, text, type>>, role>>`, `images`), OpenAI chat
requests (`image_url` parts with data URLs) and Qwen-VL messages (`{"type": "image", "image": ...}`).
Images are real PNG/JPEG bytes from Pillow; Parquet is written by pyarrow with small row groups so
every reader crosses row-group boundaries.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def image_bytes(colour: str = "red", size: tuple[int, int] = (8, 6), fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


# Small real images the Hub tests embed: a PNG, a JPEG, and a PNG of another size.
RED = image_bytes("red")
BLUE = image_bytes("blue", fmt="JPEG")
GREEN = image_bytes("green", size=(5, 5))


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _write(path: Path, rows: list[dict], schema: pa.Schema, row_group_size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=schema)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


CAULDRON = pa.schema(
    [
        ("images", pa.list_(IMAGE)),
        (
            "texts",
            pa.list_(
                pa.struct(
                    [("user", pa.string()), ("assistant", pa.string()), ("source", pa.string())]
                )
            ),
        ),
    ]
)


def cauldron_row(i: int, images: list[bytes], source: str = "vqav2", turns: int = 1) -> dict:
    return {
        "images": [{"bytes": b, "path": None} for b in images],
        "texts": [
            {"user": f"Question {i}.{t}?", "assistant": f"Answer {i}.{t}.", "source": source}
            for t in range(turns)
        ],
    }


def write_cauldron(path: Path, rows: list[dict], row_group_size: int = 3) -> Path:
    return _write(path, rows, CAULDRON, row_group_size)


ONEVISION = pa.schema(
    [
        ("id", pa.string()),
        ("image", IMAGE),
        ("conversations", pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))),
        ("data_source", pa.string()),
    ]
)


def onevision_row(i: int, image: bytes | None, source: str = "CLEVR-Math(MathV360K)") -> dict:
    prompt = ("<image>\n" if image is not None else "") + f"How many cubes in scene {i}?"
    return {
        "id": f"ov-{i}",
        "image": None if image is None else {"bytes": image, "path": f"scene_{i}.png"},
        "conversations": [
            {"from": "human", "value": prompt},
            {"from": "gpt", "value": f"There are {i % 5} cubes."},
        ],
        "data_source": source,
    }


def write_onevision_shards(
    folder: Path, shards: list[list[dict]], row_group_size: int = 2
) -> list[Path]:
    """`train-0000N-of-0000M.parquet`, the name `datasets` gives the shards it pushes."""
    m = len(shards)
    return [
        _write(folder / f"train-{n:05d}-of-{m:05d}.parquet", rows, ONEVISION, row_group_size)
        for n, rows in enumerate(shards)
    ]


TRL = pa.schema(
    [
        (
            "messages",
            pa.list_(
                pa.struct(
                    [
                        (
                            "content",
                            pa.list_(
                                pa.struct(
                                    [
                                        ("index", pa.int64()),
                                        ("text", pa.string()),
                                        ("type", pa.string()),
                                    ]
                                )
                            ),
                        ),
                        ("role", pa.string()),
                    ]
                )
            ),
        ),
        ("images", pa.list_(IMAGE)),
    ]
)


def trl_row(i: int, images: list[bytes]) -> dict:
    """A user turn: one placeholder per image, then the question (TRL's llava-instruct-mix)."""
    parts = [{"index": k, "text": None, "type": "image"} for k in range(len(images))]
    parts.append({"index": None, "text": f"Describe picture {i}.", "type": "text"})
    return {
        "messages": [
            {"content": parts, "role": "user"},
            {
                "content": [{"index": None, "text": f"Picture {i} is plain.", "type": "text"}],
                "role": "assistant",
            },
        ],
        "images": [{"bytes": b, "path": None} for b in images],
    }


def write_trl(path: Path, rows: list[dict], row_group_size: int = 2) -> Path:
    return _write(path, rows, TRL, row_group_size)


def openai_row(i: int, image_url: str) -> dict:
    return {
        "messages": [
            {"role": "system", "content": "You are a careful assistant."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"What colour is image {i}?"},
                    {"type": "image_url", "image_url": {"url": image_url, "detail": "low"}},
                ],
            },
            {"role": "assistant", "content": f"Colour {i}."},
        ]
    }


def qwen_row(i: int, image: str) -> dict:
    return {
        "id": i,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image", "image": image}, {"type": "text", "text": f"Q{i}?"}],
            },
            {"role": "assistant", "content": [{"type": "text", "text": f"A{i}."}]},
        ],
    }


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def store_files(images_dir: Path) -> dict[str, tuple[int, int]]:
    """Every stored image: relative path -> (size, mtime_ns), to prove nothing was rewritten."""
    return {
        str(p.relative_to(images_dir)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(images_dir.rglob("*"))
        if p.is_file()
    }
