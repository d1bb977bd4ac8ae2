"""Formatting helpers shared by screens and widgets: safe text, numbers, durations, theme styles.

Everything that came from a model or the engine (completions, task ids, details, event text) goes
through `safe()` and into `rich.text.Text` objects: it is never parsed as markup and terminal
control characters are made visible instead of being sent to the terminal.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from rich.style import Style
from rich.text import Text
from textual.color import Color

if TYPE_CHECKING:
    from textual.app import App

BUCKETS = ("unsolved", "barely", "often", "always")
BUCKET_SHORT = {"unsolved": "uns", "barely": "bar", "often": "oft", "always": "alw"}
SPARKS = "▁▂▃▄▅▆▇█"

# C0/C1 control characters other than newline and tab, DEL, and lone surrogates.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def safe(text: object, tabsize: int = 4) -> str:
    """Text from outside (model, engine, user files) with control characters shown as \\xNN."""
    s = "" if text is None else str(text)
    s = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else "\ufffd", s)
    return s.expandtabs(tabsize) if "\t" in s else s


def safe_text(text: object, style: str | Style = "", **kw) -> Text:
    return Text(safe(text), style=style, **kw)


def one_line(text: object, width: int = 0) -> str:
    s = " ".join(safe(text).split())
    if width and len(s) > width:
        s = s[: max(0, width - 1)] + "…"
    return s


def pct(x: float | None, digits: int = 0) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def num(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def duration(seconds: float | None) -> str:
    """Compact h:mm:ss / m:ss."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "–"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def age(seconds: float | None) -> str:
    """How long ago, in the largest sensible unit: 45s, 12m, 3h, 5d."""
    if seconds is None:
        return "–"
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def clock(t: float | None) -> str:
    return "–" if not t else time.strftime("%H:%M:%S", time.localtime(t))


def natural_key(s: str) -> tuple:
    """HumanEval/2 before HumanEval/10."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s))


def spark(values: list[float | None], lo: float = 0.0, hi: float = 1.0) -> str:
    """One block character per value on a fixed scale (so heights mean the same in every row)."""
    out = []
    for v in values:
        if v is None:
            out.append(" ")
            continue
        f = 0.0 if hi <= lo else min(1.0, max(0.0, (v - lo) / (hi - lo)))
        out.append(SPARKS[min(len(SPARKS) - 1, int(f * (len(SPARKS) - 1) + 0.5))])
    return "".join(out)


def bar(fraction: float | None, width: int) -> tuple[str, str]:
    """(filled, empty) parts of a horizontal bar with eighth-cell resolution."""
    if width <= 0:
        return "", ""
    f = 0.0 if fraction is None else min(1.0, max(0.0, fraction))
    eighths = int(round(f * width * 8))
    full, part = divmod(eighths, 8)
    filled = "█" * full + ("" if part == 0 or full >= width else " ▏▎▍▌▋▊▉"[part])
    return filled, "░" * (width - len(filled))


def _rich(value: str | None, fallback: str) -> Style:
    try:
        return Style(color=Color.parse(value or fallback).rich_color)
    except Exception:  # a theme variable we cannot parse: keep the screen readable
        return Style(color=fallback)


_STYLE_CACHE: dict[tuple[int, str], dict[str, Style]] = {}


def theme_styles(app: "App") -> dict[str, Style]:
    """Rich styles from the current theme, for text rendered outside CSS (tables, bars, cells)."""
    key = (id(app), app.theme)
    cached = _STYLE_CACHE.get(key)
    if cached is None:
        if len(_STYLE_CACHE) > 64:
            _STYLE_CACHE.clear()
        cached = _STYLE_CACHE[key] = _theme_styles(app)
    return cached


def _theme_styles(app: "App") -> dict[str, Style]:
    v = app.theme_variables
    success, warning, error = _rich(v.get("success"), "green"), _rich(v.get("warning"), "yellow"), _rich(v.get("error"), "red")
    accent, primary = _rich(v.get("accent"), "cyan"), _rich(v.get("primary"), "blue")
    muted = _rich(v.get("foreground-darken-2") or v.get("foreground"), "bright_black")
    if getattr(app.current_theme, "ansi", False):
        muted = Style(dim=True)
    return {
        "unsolved": error, "barely": warning + Style(bold=True), "often": accent, "always": success,
        "success": success, "warning": warning, "error": error, "accent": accent, "primary": primary,
        "muted": muted, "bold": Style(bold=True), "dim": Style(dim=True),
        "info": primary, "ok": success, "warn": warning + Style(bold=True), "collapse": error + Style(bold=True),
    }


STATUS_STYLE = {
    "running": "success", "starting": "accent", "paused": "warning", "finished": "primary",
    "stopped": "muted", "failed": "error", "engine lost": "error",
}
