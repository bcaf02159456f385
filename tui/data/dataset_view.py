"""A dataset's samples before any run: filters (flag, task, source, tag, text), counts per flag,
task, source and tag, and a page of rows; plain SQL over the catalog, no run folder needed.

"Source" is the first folder of the sample's first image as written in the data file
(`coco/train2017/1.jpg` -> `coco`), which is how mixes such as LLaVA-665K name their parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from store import tags as tag_log
from store.catalog import Catalog
from store.datasets import get_dataset
from store.sql import LIKE_ESCAPE, contains

SOURCE_SQL = (
    "CASE WHEN len(images_raw) = 0 THEN '(no image)' "
    "WHEN strpos(images_raw[1], '/') = 0 THEN '(top folder)' "
    "ELSE split_part(images_raw[1], '/', 1) END"
)
CLEAN = "(clean)"  # the flag filter value for samples without any flag


@dataclass(frozen=True)
class Filters:
    flag: str | None = None  # a flag, or CLEAN
    task: str | None = None
    source: str | None = None
    tag: str | None = None
    text: str | None = None  # substring of question, answer or source id (case-insensitive)

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in vars(self).items() if v]
        return ", ".join(parts) or "all samples"


@dataclass
class SampleLine:
    sample_id: int
    orig_id: str
    task: str | None
    source: str
    flags: list[str]
    tags: list[str] = field(default_factory=list)
    question: str = ""
    image: str | None = None


@dataclass
class Counts:
    total: int
    matching: int
    flags: dict[str, int]
    tasks: dict[str, int]
    sources: dict[str, int]
    tags: dict[str, int]


class DatasetView:
    def __init__(self, catalog: Catalog, name: str) -> None:
        self.catalog = catalog
        self.record = get_dataset(catalog, name)
        self.dataset_id = self.record.dataset_id
        self._fixed: tuple[int, dict[str, int], dict[str, int], dict[str, int]] | None = None

    def _where(self, f: Filters) -> tuple[str, list[Any]]:
        where, params = ["dataset_id = ?"], [self.dataset_id]
        if f.flag == CLEAN:
            where.append("len(flags) = 0")
        elif f.flag:
            where.append("list_contains(flags, ?)")
            params.append(f.flag)
        if f.task:
            where.append("task = ?")
            params.append(f.task)
        if f.source:
            where.append(f"{SOURCE_SQL} = ?")
            params.append(f.source)
        if f.tag:
            where.append(
                f"sample_id IN (SELECT sample_id FROM ({tag_log.CURRENT_SQL}) c WHERE tag = ?)"
            )
            params.append(f.tag)
        if f.text:
            like_q = f"ILIKE ? {LIKE_ESCAPE}"  # the text as typed, % and _ included
            where.append(f"(question {like_q} OR answer {like_q} OR orig_id {like_q})")
            like = contains(f.text)
            params.extend([like, like, like])
        return " AND ".join(where), params

    def counts(self, f: Filters) -> Counts:
        """How many samples match `f`; per flag, task and source over the whole dataset (computed
        once: the samples do not change under a view), per tag as of now."""
        where, params = self._where(f)
        with self.catalog.connect() as con:
            if self._fixed is None:

                def grouped(expr: str) -> dict[str, int]:
                    rows = con.execute(
                        f"SELECT {expr} AS k, count(*) FROM samples WHERE dataset_id = ? "
                        "GROUP BY 1 ORDER BY 2 DESC, 1",
                        [self.dataset_id],
                    ).fetchall()
                    return {str(k): int(n) for k, n in rows if k is not None}

                total = con.execute(
                    "SELECT count(*) FROM samples WHERE dataset_id = ?", [self.dataset_id]
                ).fetchone()
                self._fixed = (
                    int(total[0]) if total else 0,
                    grouped("unnest(flags)"),
                    grouped("coalesce(task, '(none)')"),
                    grouped(SOURCE_SQL),
                )
            matching = con.execute(f"SELECT count(*) FROM samples WHERE {where}", params).fetchone()
            n_total, flags, tasks, sources = self._fixed
            return Counts(
                total=n_total,
                matching=int(matching[0]) if matching else 0,
                flags=flags,
                tasks=tasks,
                sources=sources,
                tags=tag_log.tag_counts(con, self.dataset_id),
            )

    def page(self, f: Filters, start: int, count: int) -> list[SampleLine]:
        where, params = self._where(f)
        with self.catalog.connect() as con:
            rows = con.execute(
                f"SELECT sample_id, orig_id, task, {SOURCE_SQL}, flags, question, images[1] "
                f"FROM samples WHERE {where} ORDER BY sample_id LIMIT ? OFFSET ?",
                [*params, count, start],
            ).fetchall()
            lines = [SampleLine(r[0], r[1], r[2], r[3], list(r[4]), [], r[5], r[6]) for r in rows]
            found = tag_log.current_tags(con, [line.sample_id for line in lines])
        for line in lines:
            line.tags = found.get(line.sample_id, [])
        return lines
