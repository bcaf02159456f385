"""Errors a user can meet in the data layer; each names the file, line or sample and the fix."""

from __future__ import annotations


class ThresherError(Exception):
    """An error meant for the user: the CLI prints it as one line and exits non-zero.

    `exit_code`: 2 for input the user can correct (a name, a file, an option), 1 for a failure of
    the machine or the workspace (full disk, damaged catalog). An instance may override it.
    """

    exit_code = 2


class CatalogBusy(ThresherError):
    """The catalog stayed locked by another process longer than we were willing to wait."""

    exit_code = 1


class CatalogBroken(ThresherError):
    """catalog.duckdb cannot be read (truncated, overwritten, a failed disk): names the recovery."""

    exit_code = 1


class DiskFull(ThresherError):
    """A write ran out of space; what was half-written has been removed."""

    exit_code = 1


class IngestError(ThresherError):
    """An input file cannot be ingested as a whole; the catalog was left unchanged."""


class NotFound(ThresherError):
    """A dataset, run, selection or sample that the user named does not exist."""
