"""Where finished sample rows wait for the one catalog write: memory, or a Parquet file.

A single data file's rows are already in memory (the readers return them whole), so they stay
there. Shards stream: their rows go to `<workspace>/.ingest/<pid>-<token>.parquet` chunk by chunk,
so memory holds one chunk, not the dataset; the catalog write then reads that file (merge.py),
and the file is removed whether the ingest succeeds or not. A file left by a killed ingest is
removed by the next one (its writer's pid is gone); it is never read again.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa

from store.images import sweep_dead

STAGING = ".ingest"


class MemoryStage:
    """Rows kept as Arrow tables in memory."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.tables: list[pa.Table] = []

    def write(self, table: pa.Table) -> None:
        self.tables.append(table)

    def batches(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        for t in self.tables:
            yield from t.select(columns).to_batches()

    def rewrite(self, fix: Callable[[pa.RecordBatch, int], pa.RecordBatch]) -> None:
        """Replace every batch by `fix(batch, index of its first row)`."""
        out, start = [], 0
        for t in self.tables:
            for b in t.to_batches():
                out.append(pa.Table.from_batches([fix(b, start)], schema=self.schema))
                start += b.num_rows
        self.tables = out

    def close(self) -> None:
        pass

    @property
    def staged(self) -> pa.Table:
        return pa.concat_tables(self.tables) if self.tables else self.schema.empty_table()

    def discard(self) -> None:
        self.tables = []


class FileStage:
    """Rows appended to a Parquet file in the workspace, one row group per chunk."""

    def __init__(self, workspace_root: Path, schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        self.schema = schema
        folder = Path(workspace_root) / STAGING
        folder.mkdir(parents=True, exist_ok=True)
        sweep_dead(folder)
        self.path = folder / f"{os.getpid()}-{secrets.token_hex(4)}.parquet"
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(self.path, schema)

    def write(self, table: pa.Table) -> None:
        assert self._writer is not None, "write after close"
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def batches(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq

        self.close()
        yield from pq.ParquetFile(self.path).iter_batches(columns=columns)

    def rewrite(self, fix: Callable[[pa.RecordBatch, int], pa.RecordBatch]) -> None:
        """Replace every batch by `fix(batch, index of its first row)`, one batch in memory."""
        import pyarrow.parquet as pq

        self.close()
        tmp = self.path.with_name(self.path.stem + "-fixed.parquet")
        start = 0
        try:
            with pq.ParquetWriter(tmp, self.schema) as writer:
                for b in pq.ParquetFile(self.path).iter_batches():
                    writer.write_batch(fix(b, start))
                    start += b.num_rows
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    @property
    def staged(self) -> Path:
        self.close()
        return self.path

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
