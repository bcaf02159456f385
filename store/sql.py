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


# `x ILIKE ? ESCAPE '\'` with contains(text) finds `text` in x literally (% and _ included):
# DuckDB's LIKE has no default escape character.
LIKE_ESCAPE = "ESCAPE '\\'"


def contains(text: str) -> str:
    """The LIKE pattern of "has `text` in it, as typed": `50%` -> `%50\\%%`."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
