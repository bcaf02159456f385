"""Small writers for ingest tests: real PNGs from Pillow and data files in each input format."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image


def png(path: Path, colour: str = "red", size: tuple[int, int] = (6, 4)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def write_json(path: Path, obj: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def llava_row(i: int, image: str | list | None = "img/a.png", answer: str = "Red", **extra):
    row = {"id": f"s{i}"}
    if image is not None:
        row["image"] = image
    n = len(image) if isinstance(image, list) else (0 if image is None else 1)
    row["conversations"] = [
        {"from": "human", "value": "<image>\n" * n + f"Question {i}?"},
        {"from": "gpt", "value": answer},
    ]
    row.update(extra)
    return row


def samples(catalog, name: str) -> list[dict]:
    """Every sample of dataset `name` as a dict, in file order."""
    with catalog.connect() as con:
        cur = con.execute(
            "SELECT s.* FROM samples s JOIN datasets d USING (dataset_id) WHERE d.name = ? "
            "ORDER BY position",
            [name],
        )
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def snapshot(catalog) -> tuple[bytes, list, list]:
    """Every dataset and sample row, then the catalog file's bytes (read after the connection
    closed, so the bytes are what the next reader finds)."""
    with catalog.connect() as con:
        ds = con.execute("SELECT * FROM datasets ORDER BY dataset_id").fetchall()
        rows = con.execute("SELECT * FROM samples ORDER BY sample_id").fetchall()
    return catalog.path.read_bytes(), ds, rows
