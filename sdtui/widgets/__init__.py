"""Widgets of the TUI dashboard and sample browser."""
