"""A one-line tab bar for narrow terminals ("1 Problems  2 Buckets ..."); keys 1-5 or a click switch."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static


class TabBar(Static):
    DEFAULT_CSS = """
    TabBar { height: 1; background: $panel; color: $text-muted; }
    """

    def __init__(self, tabs: list[tuple[str, str]], active: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.tabs, self.active = tabs, active

    def on_mount(self) -> None:
        self.show(self.active)

    def show(self, active: str) -> None:
        self.active = active
        parts = []
        for i, (key, label) in enumerate(self.tabs, 1):
            text = Content(f" {i} {label} ")
            if key == self.active:
                text = text.stylize("bold reverse $primary")
            parts.append(text.stylize(f"@click=screen.show_pane('{key}')"))
        self.update(Content("").join(parts))
