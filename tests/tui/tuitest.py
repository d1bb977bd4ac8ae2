"""Helpers for the TUI tests (kept out of conftest.py so that test modules can import them by name)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path


def read_cli_log(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


async def wait_for(pilot, predicate, timeout: float = 10.0, what: str = "condition") -> None:
    """Let the app run until `predicate()` holds (worker threads post their data asynchronously)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)
    await pilot.pause()


async def wait_loaded(pilot, screen_type=None, timeout: float = 10.0):
    """Wait until the current screen (of `screen_type`, when given) has shown its first data."""
    app = pilot.app

    def ready() -> bool:
        s = app.screen
        return (screen_type is None or isinstance(s, screen_type)) and getattr(s, "loaded", True)

    await wait_for(pilot, ready, timeout, f"{screen_type.__name__ if screen_type else 'screen'} to load")
    await asyncio.sleep(0.05)
    await pilot.pause()
    return app.screen


async def settle(pilot, timeout: float = 5.0) -> None:
    """Wait until two screenshots 0.1 s apart are the same: deferred scrolls, re-wraps and layout passes
    that a loaded machine runs late have all landed, so a snapshot never catches the screen half-drawn."""
    app = pilot.app
    await pilot.wait_for_scheduled_animations()
    deadline = time.monotonic() + timeout
    last = app.export_screenshot()
    while time.monotonic() < deadline:
        await pilot.pause(0.1)
        shot = app.export_screenshot()
        if shot == last:
            return
        last = shot
