"""A fast list of one-line rows with a cursor (Textual's Line API: only the visible rows are rendered).

DataTable measures and re-renders every cell when its rows are replaced, which costs hundreds of
milliseconds for a few hundred samples; this list renders a row only when it scrolls into view,
from a formatter the owner supplies, so replacing 300 or 5,000 rows costs next to nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from rich.segment import Segment
from rich.text import Text
from textual.binding import Binding
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip


class RowList(ScrollView, can_focus=True):
    COMPONENT_CLASSES = {"rowlist--cursor"}
    DEFAULT_CSS = """
    RowList { background: $surface; overflow-x: hidden; }
    RowList > .rowlist--cursor { background: $block-cursor-blurred-background; }
    RowList:focus > .rowlist--cursor {
        background: $block-cursor-background; color: $block-cursor-foreground; text-style: $block-cursor-text-style;
    }
    """
    BINDINGS = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("enter", "select", "Select", show=False),
    ]

    cursor: reactive[int] = reactive(0, init=False)

    @dataclass
    class Highlighted(Message):
        row_list: "RowList"
        index: int

        @property
        def control(self) -> "RowList":
            return self.row_list

    @dataclass
    class Selected(Message):
        row_list: "RowList"
        index: int

        @property
        def control(self) -> "RowList":
            return self.row_list

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.count = 0
        self._format: Callable[[int], Text] = lambda i: Text()
        self._cache: dict[int, Text] = {}
        self._strips: dict[int, tuple[object, Strip]] = {}  # row -> (base style, rendered strip)

    # -- data
    def set_rows(self, count: int, formatter: Callable[[int], Text], cursor: int = 0) -> None:
        """Show `count` rows; `formatter(i)` builds row i's text when it first becomes visible."""
        self.count, self._format = count, formatter
        self._cache.clear()
        self._strips.clear()
        self.virtual_size = Size(0, count)
        self.set_reactive(RowList.cursor, max(0, min(cursor, count - 1)) if count else 0)
        self._scroll_cursor_into_view(center=True)
        self.refresh()
        if count:
            self.post_message(self.Highlighted(self, self.cursor))

    def refresh_rows(self, *indexes: int) -> None:
        """Re-format rows (all when none given), e.g. after a mark or a theme change."""
        if indexes:
            for i in indexes:
                self._cache.pop(i, None)
                self._strips.pop(i, None)
        else:
            self._cache.clear()
            self._strips.clear()
        self.refresh()

    def _text(self, index: int) -> Text:
        text = self._cache.get(index)
        if text is None:
            if len(self._cache) > 2000:
                self._cache.clear()
            text = self._cache[index] = self._format(index)
        return text

    # -- rendering
    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        base = self.rich_style
        if index >= self.count:
            return Strip.blank(width, base)
        if index == self.cursor:
            style = base + self.get_component_rich_style("rowlist--cursor")
            return self._render_row(index, style).crop_extend(scroll_x, scroll_x + width, style)
        cached = self._strips.get(index)
        if cached is None or cached[0] != base:
            if len(self._strips) > 2000:
                self._strips.clear()
            cached = self._strips[index] = (base, self._render_row(index, base))
        return cached[1].crop_extend(scroll_x, scroll_x + width, base)

    def _render_row(self, index: int, style) -> Strip:
        segments = self._text(index).render(self.app.console, end="")
        return Strip([Segment(s.text, style + s.style if s.style else style) for s in segments])

    def on_resize(self) -> None:
        self.virtual_size = Size(0, self.count)

    # -- cursor
    def watch_cursor(self, old: int, new: int) -> None:
        self.refresh_line_for(old)
        self.refresh_line_for(new)
        self._scroll_cursor_into_view()
        if self.count:
            self.post_message(self.Highlighted(self, new))

    def refresh_line_for(self, index: int) -> None:
        y = index - self.scroll_offset.y
        if 0 <= y < self.size.height:
            self.refresh_line(y)

    def _scroll_cursor_into_view(self, center: bool = False) -> None:
        height = max(1, self.size.height)
        top = self.scroll_offset.y
        if center and not (top <= self.cursor < top + height):
            self.scroll_to(y=max(0, self.cursor - height // 2), animate=False, immediate=True)
        elif self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)

    def move_to(self, index: int) -> None:
        if self.count:
            self.cursor = max(0, min(self.count - 1, index))

    def action_move(self, delta: int) -> None:
        self.move_to(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self.move_to(self.cursor + direction * max(1, self.size.height - 1))

    def action_jump(self, index: int) -> None:
        self.move_to(index if index >= 0 else self.count - 1)

    def action_select(self) -> None:
        if self.count:
            self.post_message(self.Selected(self, self.cursor))

    def on_click(self, event: Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        index = self.scroll_offset.y + offset.y
        if index < self.count:
            if index == self.cursor:
                self.action_select()
            self.move_to(index)

