"""Widgets of the workstation; they draw records from tui.data and speak in messages, never SQL."""
