"""Command palette (ctrl+p): every action of the current screen, campaign control, themes, help."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

CONTROL = [
    ("Pause campaign", "control('pause')", "p"),
    ("Resume campaign (or restart a lost engine)", "control('resume')", "r"),
    ("Stop campaign now", "control('stop')", "x"),
    ("Stop campaign after this round", "control('stop_after_round')", "a"),
]


class SdtuiCommands(Provider):
    """Actions are run on the screen that was current when the palette opened."""

    def _commands(self) -> list[tuple[str, object, str]]:
        screen = self.screen
        out: list[tuple[str, object, str]] = []
        if hasattr(screen, "action_control"):
            out += [(title, partial(screen.run_action, action), key) for title, action, key in CONTROL]
        if hasattr(screen, "palette_commands"):
            out += [(title, partial(screen.run_action, action), key) for title, action, key in screen.palette_commands()]
        app = self.app
        out.append(("Help: list every key", app.action_help, "?"))
        out.append(("Launch a new campaign", partial(app.run_action, "launch"), "n"))
        for name in sorted(getattr(app, "sdtui_themes", {})):
            out.append((f"Theme: {name}", partial(setattr, app, "theme", name), ""))
        return out

    async def discover(self) -> Hits:
        for title, callback, key in self._commands():
            yield DiscoveryHit(title, callback, help=f"key {key}" if key else None)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, key in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=f"key {key}" if key else None)
