"""The help screen: every key of every screen (read from their bindings) and what the colours mean."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from sdtui.fmt import BUCKETS, theme_styles

_KEY_NAMES = {
    "question_mark": "?", "slash": "/", "escape": "esc", "enter": "enter", "left_square_bracket": "[",
    "right_square_bracket": "]", "greater_than_sign": ">", "less_than_sign": "<", "full_stop": ".",
}


# Longer words for the help screen than the key bar has room for (by action; else the binding's own).
LONG = {
    "control('pause')": "Pause the campaign (within seconds)",
    "control('resume')": "Resume: a paused campaign, or restart a lost engine (runs `sdtui resume`)",
    "control('stop')": "Stop now; the state is kept and can be resumed (asks first)",
    "control('stop_after_round')": "Stop when the current round ends: the answer to a collapse (asks first)",
    "open": "Open the selected campaign's dashboard",
    "launch": "Launch a new campaign from a TOML file",
    "browse": "Sample browser",
    "back": "Back to the previous screen",
    "show_pane('grid')": "Pass-count grid: problems x rounds, c/n by bucket",
    "show_pane('buckets')": "Bucket split per round and the transition table",
    "show_pane('diversity')": "Diversity gauge per round and the collapse warning",
    "show_pane('passk')": "pass@1 / pass@k per round, train and held-out",
    "show_pane('events')": "Event log of the engine",
    "toggle_split": "Buckets and transitions: train or held-out problems",
    "transition_round(-1)": "Transitions of the previous round",
    "transition_round(1)": "Transitions of the next round",
    "cycle_sort": "Sort by gain, task id, pass count",
    "reverse_sort": "Reverse the sort",
    "cycle_filter": "Show all / barely solved at r0 / unsolvable / hinted / train / held-out problems",
    "select_cursor": "Open the problem's samples",
    "step(1)": "Next sample",
    "step(-1)": "Previous sample",
    "focus_text": "Search text in the programs and verifier messages",
    "toggle_raw": "Show the model's raw output instead of the program",
    "mark": "Mark this sample for a comparison",
    "compare(False)": "Compare with the marked sample, side by side",
    "compare(True)": "Diff against the marked sample",
    "toggle_diff": "Side by side / unified diff",
    "start": "Start the campaign (runs `sdtui start` with the overrides)",
}


def _key(keys: str) -> str:
    return "/".join(_KEY_NAMES.get(k, k) for k in keys.split(","))


def _sections() -> list[tuple[str, list[Binding]]]:
    from sdtui.app import SdtuiApp
    from sdtui.screens.campaigns import CampaignsScreen
    from sdtui.screens.dashboard import DashboardScreen
    from sdtui.screens.launch import LaunchScreen
    from sdtui.screens.samples import CompareScreen, SamplesScreen
    from sdtui.widgets.passgrid import PassGrid

    def bindings(cls) -> list[Binding]:
        out = []
        for b in cls.BINDINGS:
            b = b if isinstance(b, Binding) else Binding(*b)
            if b.description:
                out.append(b)
        return out

    return [
        ("Everywhere", bindings(SdtuiApp) + [Binding("ctrl+p", "", "Command palette: every action, themes")]),
        ("Campaigns", bindings(CampaignsScreen)),
        ("Dashboard", bindings(DashboardScreen)),
        ("Pass-count grid (dashboard, Problems)", bindings(PassGrid)),
        ("Sample browser", bindings(SamplesScreen)),
        ("Compare two samples", bindings(CompareScreen)),
        ("Launch", bindings(LaunchScreen)),
    ]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(id="help-body")

    def on_mount(self) -> None:
        self.query_one("#help", VerticalScroll).border_title = "sdtui help (esc closes)"
        self.query_one("#help-body", Static).update(self.render_help())

    def render_help(self) -> Table:
        st = theme_styles(self.app)
        outer = Table.grid(padding=(0, 1))
        outer.add_column()
        for title, binds in _sections():
            t = Table(title=title, title_justify="left", title_style=st["primary"] + st["bold"], show_header=False,
                      box=None, padding=(0, 1), expand=False)
            t.add_column(style=st["accent"] + st["bold"], min_width=7, no_wrap=True)
            t.add_column()
            for b in binds:
                t.add_row(_key(b.key), LONG.get(b.action, b.description))
            outer.add_row(t)
        legend = Text("Pass-count cells c/n are coloured by bucket: ")
        for name in BUCKETS:
            legend.append(name, st[name])
            legend.append(" ")
        legend.append("\n(unsolved 0, barely (0, 0.3], often (0.3, 1), always 1). ")
        legend.append("✗", st["error"])
        legend.append(" marks an unsolvable problem: never passed in any round. The diversity gauge is the campaign "
                      "mean relative to round 0 (= 100); a collapse warning shows in the warning colour with its reason.")
        outer.add_row(Text("Colours", style=st["primary"] + st["bold"]))
        outer.add_row(legend)
        outer.add_row(Text("Quitting leaves engines running; reopening sdtui re-attaches.", style=st["muted"]))
        return outer
