"""Two helpers for DuckDB 2.x: every execute() result is drained (an unfinished one blocks the connection)."""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[tuple]:
    """Run a statement and fetch everything it returns (DDL/DML return one count row or none)."""
    return con.execute(sql, params or []).fetchall()


def one(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> tuple | None:
    found = rows(con, sql, params)
    return found[0] if found else None


def arrow(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pa.Table:
    """Arrow straight from a relation (execute()'s Arrow output copies the rows in 2.x)."""
    return con.sql(sql, params=params).to_arrow_table() if params else con.sql(sql).to_arrow_table()
