"""Resolving model names to local files (hub names, offline mode, open_clip names)."""
