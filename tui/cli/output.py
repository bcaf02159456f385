"""Machine-readable output for scripts: `--json` on the listing commands, one JSON document on
stdout (errors still go to stderr with a non-zero exit code)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click

json_option: Callable[[Callable[..., Any]], Callable[..., Any]] = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON document on stdout instead of the table (for scripts).",
)

# Read with store.ids.read_id_file by every command that takes it (decide, tag).
ids_file_option: Callable[[Callable[..., Any]], Callable[..., Any]] = click.option(
    "--ids-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="A file of original sample ids, one a line, plain or as a JSON string (an `ids` "
    "export works and keeps ids with line breaks or blanks exact).",
)


def plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


def print_json(value: Any) -> None:
    """Dataclasses, paths and datetimes become plain JSON; NaN becomes null."""
    click.echo(json.dumps(plain(value), indent=2, ensure_ascii=False, allow_nan=False))
