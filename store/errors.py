"""Errors a user can meet in the data layer; each names the file, line or sample and the fix."""

from __future__ import annotations


class ThresherError(Exception):
    """An error meant for the user: the CLI prints it as one line and exits non-zero."""


class CatalogBusy(ThresherError):
    """The catalog stayed locked by another process longer than we were willing to wait."""


class IngestError(ThresherError):
    """An input file cannot be ingested as a whole; the catalog was left unchanged."""


class NotFound(ThresherError):
    """A dataset, run, selection or sample that the user named does not exist."""
