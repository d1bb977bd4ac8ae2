"""The tail of a campaign's event log (engine messages), newest at the bottom."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from sdtui.fmt import clock, safe, theme_styles

LEVEL_STYLE = {"info": "muted", "warning": "warning", "error": "error"}


class EventLog(RichLog):
    DEFAULT_CSS = "EventLog { height: 1fr; scrollbar-gutter: stable; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=500, min_width=1, wrap=True, markup=False, highlight=False, auto_scroll=True,
                         **kwargs)
        self.events: list[dict] = []

    def add_events(self, events: list[dict]) -> None:
        self.events = (self.events + events)[-500:]
        st = theme_styles(self.app)
        for e in events:
            self.write(self._line(e, st))

    def on_resize(self, event) -> None:
        # RichLog wraps lines once, at the width it had when they were written: re-wrap on a new width.
        if self._size_known and event.size.width != getattr(self, "_wrapped_at", None):
            self._wrapped_at = event.size.width
            self.redraw()

    def redraw(self) -> None:
        """Re-render every line (after a theme change)."""
        self.clear()
        st = theme_styles(self.app)
        for e in self.events:
            self.write(self._line(e, st))

    @staticmethod
    def _line(e: dict, st: dict) -> Text:
        level = e.get("level", "info")
        line = Text(clock(e.get("time")) + " ", style=st["muted"])
        if level != "info":
            line.append(f"{level}: ", st.get(LEVEL_STYLE.get(level, "muted")))
        line.append(safe(e.get("text", "")), st["warning"] if level == "warning" else st["error"] if level == "error" else "")
        return line
