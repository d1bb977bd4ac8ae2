"""The Textual front end: `SdtuiApp`, `make_app` (tests, benchmarks) and `run_tui` (the CLI's entry).

The TUI reads the workspace database (one connection per worker thread, see screens/base.py) and
writes only `commands` rows; launching and resuming a lost engine go through the CLI as a subprocess.
Quitting leaves engines running. Screens live in sdtui/screens, widgets in sdtui/widgets.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

from textual.app import App
from textual.binding import Binding
from textual.theme import Theme

from engine.workspace import Workspace

from sdtui.commands import SdtuiCommands
from sdtui.themes import ANSI_THEME, DEFAULT_THEME, load_themes, read_settings, write_settings


class SdtuiApp(App[None]):
    CSS_PATH = "sdtui.tcss"
    TITLE = "sdtui"
    COMMANDS = App.COMMANDS | {SdtuiCommands}
    BINDINGS = [
        Binding("question_mark,f1", "help", "Help"),
        Binding("q", "quit", "Quit (engines keep running)", show=False),
    ]

    def __init__(self, home: Path, theme: str | None = None, campaign: int | None = None, *,
                 now: Callable[[], float] = time.time, poll_interval: float = 0.5,
                 cli_argv: list[str] | None = None, campaign_dirs: list[Path] | None = None,
                 themes: dict[str, Theme] | None = None) -> None:
        super().__init__()
        self.home = Path(home)
        self.db_path = Workspace.resolve(self.home).db_path
        self.now = now
        self.poll_interval = poll_interval  # seconds between polls of the database (0.5 = at most twice a second)
        self.cli_argv = cli_argv or [sys.executable, "-m", "sdtui", "--home", str(self.home)]
        repo = Path(__file__).resolve().parent.parent
        self.campaign_dirs = campaign_dirs or [Path.cwd() / "campaigns", repo / "campaigns", self.home / "campaigns"]
        self.start_campaign = campaign
        self.sdtui_themes = themes if themes is not None else load_themes()
        self.requested_theme = theme
        for t in self.sdtui_themes.values():
            self.register_theme(t)

    def on_mount(self) -> None:
        chosen = self.requested_theme or read_settings(self.home).get("theme")
        if chosen not in self.available_themes:
            chosen = ANSI_THEME if self.console.color_system in ("standard", "windows") else DEFAULT_THEME
        if chosen in self.available_themes:
            self.theme = chosen
        if self.requested_theme:
            write_settings(self.home, theme=self.theme)
        self._theme_name = self.theme
        self.theme_changed_signal.subscribe(self, self._theme_changed)

        from sdtui.screens.campaigns import CampaignsScreen

        self.push_screen(CampaignsScreen())
        if self.start_campaign is not None:
            from sdtui.screens.dashboard import DashboardScreen

            self.push_screen(DashboardScreen(self.start_campaign))

    def _theme_changed(self, theme: Theme) -> None:
        if theme.name == self._theme_name:
            return  # the signal of the theme chosen at startup
        self._theme_name = theme.name
        write_settings(self.home, theme=theme.name)
        for screen in self.screen_stack:
            if hasattr(screen, "theme_changed"):
                screen.theme_changed()

    def action_help(self) -> None:
        from sdtui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def open_samples(self, cid: int, task_id: str | None = None, round: int | None = None,
                     status: str | None = None) -> None:
        """The sample browser of a campaign, filtered. One browser per campaign is kept (installed), so
        opening another problem later costs a query and a redraw, not a new screen."""
        from sdtui.screens.samples import SamplesScreen

        name = f"samples-{cid}"
        if not self.is_screen_installed(name):
            self.install_screen(SamplesScreen(cid), name)
        screen = self.get_screen(name)
        assert isinstance(screen, SamplesScreen)
        if screen in self.screen_stack:
            while self.screen is not screen:
                self.pop_screen()
        reloading = screen.show(task_id=task_id, round=round, status=status)
        if self.screen is not screen:
            if reloading:
                screen.open_when_loaded()  # pushed when the new problem's samples are in
            else:
                self.push_screen(screen)

    def action_launch(self) -> None:
        from sdtui.screens.launch import LaunchScreen

        if not isinstance(self.screen, LaunchScreen):
            self.push_screen(LaunchScreen())


def make_app(home: Path | str, theme: str | None = None, campaign: int | None = None, **kwargs) -> SdtuiApp:
    """The app on a workspace, for tests and benchmarks (kwargs: now, poll_interval, cli_argv, campaign_dirs)."""
    return SdtuiApp(Path(home), theme=theme, campaign=campaign, **kwargs)


def run_tui(home: Path, theme: str | None = None, campaign: int | None = None) -> None:
    """Open the TUI on a workspace (the CLI's `sdtui` with no command). Bad input raises UserError."""
    from textual.theme import BUILTIN_THEMES

    from engine.errors import UserError
    from engine.store import Store

    ws = Workspace.resolve(home)
    themes = load_themes()
    if theme and theme not in themes and theme not in BUILTIN_THEMES:
        names = ", ".join(sorted(themes) + sorted(BUILTIN_THEMES))
        raise UserError(f"unknown theme {theme!r}; choose one of: {names}")
    if campaign is not None:
        store = Store(ws.db_path)
        try:
            if store.campaign(campaign) is None:
                raise UserError(f"no campaign {campaign} in {ws.home}; `sdtui status` lists the campaigns there")
        finally:
            store.close()
    make_app(ws.home, theme=theme, campaign=campaign, themes=themes).run()
