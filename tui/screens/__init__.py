"""One module per screen; each owns its workers and composes widgets around tui.data records."""
