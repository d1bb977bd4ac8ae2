"""The key bar at the bottom of every screen: the active bindings on one line, clickable.

Textual's Footer renders one widget per key, which made switching screens cost tens of
milliseconds; this is a single line of text, rebuilt only when the bindings or the width change.
On a narrow terminal descriptions shrink to their first word; `?` (help) and `^p` (palette) stay.
"""

from __future__ import annotations

from textual.content import Content
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import Static

TAIL = [("?", "help", "app.help"), ("^p", "palette", "app.command_palette")]


class KeyBar(Static):
    DEFAULT_CSS = """
    KeyBar { height: 1; background: $panel; color: $foreground; padding: 0 1; }
    """

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def on_resize(self, event: Resize) -> None:
        self._bindings_changed(self.screen)

    def _bindings_changed(self, screen: Screen) -> None:
        seen: set[str] = {"help", "app.help", "command_palette"}
        items: list[tuple[str, str, str, bool]] = []
        for active in screen.active_bindings.values():
            b = active.binding
            if not b.show or not b.description or b.action in seen or b.system:
                continue
            seen.add(b.action)
            key = b.key.split(",")[0]
            items.append((self.app.get_key_display(b), b.description, f"app.simulate_key({key!r})", active.enabled))
        width = (self.size.width or 80) - 2
        line = self._line(items, short=False)
        while line.cell_length > width and items:
            line = self._line(items, short=True)
            if line.cell_length > width:
                items = items[:-1]  # the least specific bindings go first (app, then screen)
        
        if line != getattr(self, "_shown", None):
            self._shown = line
            self.update(line)

    @staticmethod
    def _line(items: list[tuple[str, str, str, bool]], short: bool) -> Content:
        parts = []
        all_items = items + [(k, d, a, True) for k, d, a in TAIL]
        firsts = [d.split()[0].lower() for _, d, _, _ in all_items]
        for (key, desc, action, enabled), first in zip(all_items, firsts):
            if short:
                words = desc.lower().split()
                desc = first if firsts.count(first) == 1 or len(words) == 1 else f"{first} {words[-1]}"
            part = Content.assemble((key, "bold $accent"), f" {desc}")
            if not enabled:
                part = part.stylize("dim")
            parts.append(part.stylize(f"@click={action}"))
        return Content(" " if short else "  ").join(parts)
