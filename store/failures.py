"""Low-level failures (full disk, JSON nested past Python's stack) as one-line user errors.

`ingest` and `export` are wrapped with `translating(...)`, so a full disk during either is a
`DiskFull` (for ingest, also an `IngestError`, as documented) naming where it ran out and what
to do, and a sample nested deeper than Python's recursion limit is an IngestError instead of a
RecursionError traceback.
"""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from store.errors import DiskFull, IngestError, ThresherError

_F = TypeVar("_F", bound=Callable[..., Any])
_FULL = ("no space left on device", "disk quota exceeded", "could not write all bytes")


def is_disk_full(exc: BaseException) -> bool:
    """An OSError ENOSPC/EDQUOT, or a DuckDB error whose text says the disk filled up."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    return type(exc).__module__.startswith(("duckdb", "_duckdb")) and any(s in text for s in _FULL)


class IngestDiskFull(IngestError, DiskFull):
    """The disk filled up during an ingest: the catalog is unchanged."""

    exit_code = 1


def disk_full_error(exc: BaseException, what: str, where: object, cls: type = DiskFull) -> Any:
    target = getattr(exc, "filename", None) or where
    return cls(
        f"no space left on the device while {what} ({target}); nothing was changed and partial "
        "files were removed. Free some space (`df -h` shows where) and run the same command again."
    )


def translating(what: str, where_arg: str, error_cls: type = DiskFull) -> Callable[[_F], _F]:
    """Decorate a store entry point: full disks and too-deep nesting become user errors.

    `where_arg` names the keyword argument (or the second positional one) that says where the
    work happens, for the message.
    """

    def wrap(fn: _F) -> _F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except DiskFull as exc:
                if isinstance(exc, error_cls):
                    raise
                raise error_cls(str(exc)) from exc  # e.g. the catalog's DiskFull as IngestError
            except ThresherError:
                raise
            except RecursionError:
                if not issubclass(error_cls, IngestError):
                    raise
                where = kwargs.get(where_arg, args[1] if len(args) > 1 else "the input")
                raise IngestError(
                    f"{where}: a sample nests lists or objects deeper than can be read (Python's "
                    "limit is about 1000 levels); flatten or remove that sample and try again."
                ) from None
            except Exception as exc:
                if is_disk_full(exc):
                    where = kwargs.get(where_arg, args[1] if len(args) > 1 else None)
                    raise disk_full_error(exc, what, where, error_cls) from exc
                raise

        return inner  # type: ignore[return-value]

    return wrap
