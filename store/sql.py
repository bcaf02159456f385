"""Quoting for the few SQL texts that cannot take parameters: table functions such as
`read_parquet(...)` take no `?`, and column names (`P1+W`) are identifiers. Everything else
passes values as parameters."""

from __future__ import annotations


def literal(text: str) -> str:
    """A SQL string literal: `it's` -> `'it''s'`."""
    return "'" + text.replace("'", "''") + "'"


def ident(name: str) -> str:
    """A quoted SQL identifier: `P1+W` -> `"P1+W"`."""
    return '"' + name.replace('"', '""') + '"'
