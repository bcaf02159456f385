"""Sample-id list files: one original id a line, JSON-quoted when plain text would lose it.

An id is written as it is unless plain text cannot carry it exactly: a line break or other
control or invisible format character (tab, NUL, right-to-left marks), blanks at either end,
or a leading double quote. Those ids are written as a JSON string (`"x\\ny"`). A reader takes
a line that starts with `"` as JSON and any other line verbatim, so the `ids` export is
lossless and a hand-written file of plain ids still works.
"""

from __future__ import annotations

import json
from pathlib import Path

from store.errors import ThresherError

# RE2 (DuckDB's regex engine): what forces an id into its JSON form.
NEEDS_QUOTES_RE = r'^["\s]|\s$|[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]'


def id_line_sql(column: str) -> str:
    """A DuckDB expression: one line of an id list for the VARCHAR `column`."""
    return (
        f"CASE WHEN regexp_matches({column}, '{NEEDS_QUOTES_RE}') "
        f"THEN to_json({column})::VARCHAR ELSE {column} END || chr(10)"
    )


def parse_id_lines(text: str, source: str = "the id list") -> list[str]:
    """Ids from an id list's text, in order; blank lines are skipped, nothing is stripped.

    Lines end at `\\n` only (a trailing `\\r` of a CRLF file is dropped); a line starting with `"`
    must be one JSON string.
    """
    out: list[str] = []
    for number, line in enumerate(text.split("\n"), 1):
        if line.endswith("\r"):
            line = line[:-1]
        if not line:
            continue
        if line.startswith('"'):
            try:
                value = json.loads(line)
            except ValueError as exc:
                raise ThresherError(
                    f"{source} line {number}: {line[:60]!r} starts with a quote but is not a JSON "
                    f"string ({exc}); quote the id as JSON, e.g. {json.dumps(line)}."
                ) from None
            line = value  # a line starting with a quote parses as a string or not at all
        out.append(line)
    return out


def read_id_file(path: Path) -> list[str]:
    """The ids of an id-list file (an `ids` export or one id a line, written by hand)."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ThresherError(
            f"{path} is not UTF-8 text ({exc}); save it as UTF-8, one id a line."
        ) from None
    except OSError as exc:
        raise ThresherError(f"cannot read {path}: {exc.strerror or exc}.") from None
    return parse_id_lines(text.removeprefix("\ufeff"), str(path))
