"""Textual app and the `thresher` command line; knows nothing of torch."""
