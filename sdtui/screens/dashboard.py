"""The live dashboard of one campaign.

Narrow terminals (under 150 x 40) show the stage progress on top and one pane at a time (keys 1-5 or
the tab bar); wide ones show every pane at once. Data comes from `DashboardLoader` in the screen's
store thread, at most every poll interval, and only what changed is re-rendered.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Vertical, VerticalScroll
from textual.events import Resize
from textual.widgets import Header, Static

from engine.store import Store

from sdtui.data import DashboardLoader
from sdtui.fmt import one_line
from sdtui.messages import DashboardUpdated
from sdtui.screens.base import CONTROL_BINDINGS, ControlMixin, StoreScreen
from sdtui.widgets.buckets import BucketPanel
from sdtui.widgets.eventlog import EventLog
from sdtui.widgets.gauge import DiversityGauge
from sdtui.widgets.passgrid import PassGrid
from sdtui.widgets.passk import PassKChart
from sdtui.widgets.progress import StageProgress
from sdtui.widgets.tabbar import TabBar
from sdtui.widgets.keybar import KeyBar

PANES = [("grid", "Problems"), ("buckets", "Buckets"), ("diversity", "Diversity"), ("passk", "pass@k"),
         ("events", "Events")]
WIDE = (150, 40)


class DashboardScreen(ControlMixin, StoreScreen):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("1", "show_pane('grid')", "Problems", show=False),
        Binding("2", "show_pane('buckets')", "Buckets", show=False),
        Binding("3", "show_pane('diversity')", "Diversity", show=False),
        Binding("4", "show_pane('passk')", "pass@k", show=False),
        Binding("5", "show_pane('events')", "Events", show=False),
        *CONTROL_BINDINGS,
        Binding("h", "toggle_split", "Train/held-out", show=False),
        Binding("left_square_bracket", "transition_round(-1)", "Earlier transitions", show=False),
        Binding("right_square_bracket", "transition_round(1)", "Later transitions", show=False),
    ]

    def __init__(self, cid: int) -> None:
        super().__init__()
        self.cid = cid
        self.loader = DashboardLoader(cid)
        self.campaign: dict | None = None
        self.status = ""
        self.pane = "grid"

    def compose(self) -> ComposeResult:
        yield Header()
        yield StageProgress(id="progress")
        yield TabBar(PANES, self.pane, id="tabbar")
        with Container(id="panes"):
            with Vertical(id="pane-grid", classes="pane -active"):
                yield Static("", id="grid-info")
                yield PassGrid(id="grid")
            with VerticalScroll(id="pane-buckets", classes="pane"):
                yield BucketPanel(id="buckets")
            with VerticalScroll(id="pane-diversity", classes="pane"):
                yield DiversityGauge(id="diversity")
            with VerticalScroll(id="pane-passk", classes="pane"):
                yield PassKChart(id="passk")
            with Vertical(id="pane-events", classes="pane"):
                yield EventLog(id="events")
        yield KeyBar()

    def on_mount(self) -> None:
        self.sub_title = f"campaign #{self.cid}"
        titles = dict(PANES)
        for key, title in titles.items():
            self.query_one(f"#pane-{key}").border_title = title
        self.query_one(PassGrid).focus()
        self._layout(self.app.size.width, self.app.size.height)

    def on_resize(self, event: Resize) -> None:
        self._layout(event.size.width, event.size.height)

    def on_screen_resume(self) -> None:
        self._layout(self.app.size.width, self.app.size.height)

    def _layout(self, width: int, height: int) -> None:
        self.set_class(width >= WIDE[0] and height >= WIDE[1], "-wide")

    # -- data
    def poll(self, store: Store, now: float) -> DashboardUpdated | None:
        data = self.loader.load(store, now)
        return DashboardUpdated(data) if data is not None else None

    def on_dashboard_updated(self, message: DashboardUpdated) -> None:
        d = message.data
        self.campaign, self.status = d.campaign, d.status
        self.sub_title = f"#{self.cid} {one_line(d.campaign['name'], 30)} · {d.status}"
        self.query_one(StageProgress).set_data(d.campaign, d.status, d.info, d.rounds)
        active = d.status in ("running", "starting", "paused")
        gauge = self.query_one(DiversityGauge)
        if d.rounds is not None or gauge.active != active:
            gauge.set_rounds(d.rounds if d.rounds is not None else gauge.rounds, d.info, active)
        if d.rounds is not None:
            self.query_one(BucketPanel).set_rounds(d.rounds)
            self.query_one(PassKChart).set_rounds(d.rounds, d.info)
        if d.grid is not None:
            self.query_one(PassGrid).set_rows(d.grid)
        if d.events:
            self.query_one(EventLog).add_events(d.events)
        self.loaded = True

    def on_pass_grid_view_changed(self, message: PassGrid.ViewChanged) -> None:
        info = self.loader.info
        # c/n's n is each problem's share of the round's budget: say when it varies, and what +Nh means
        budget = "".join(((" · n: adaptive budget" if info and info.adaptive else ""),
                          (" · +Nh: hinted passes" if info and info.hints else "")))
        self.query_one("#grid-info", Static).update(message.description + budget + "  (s sort, f filter, enter samples)")

    def on_pass_grid_open_problem(self, message: PassGrid.OpenProblem) -> None:
        self.sdtui.open_samples(self.cid, task_id=message.task_id)

    def theme_changed(self) -> None:
        self.query_one(PassGrid).rebuild(force=True)
        self.query_one(EventLog).redraw()
        for w in (StageProgress, BucketPanel, DiversityGauge, PassKChart):
            self.query_one(w).refresh(layout=True)

    # -- actions
    def control_target(self) -> tuple[int, str, str] | None:
        if self.campaign is None:
            return None
        return self.cid, self.campaign["name"], self.status

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
        else:
            from sdtui.screens.campaigns import CampaignsScreen

            self.app.switch_screen(CampaignsScreen())

    def action_show_pane(self, pane: str) -> None:
        self.pane = pane
        for p in self.query(".pane"):
            p.set_class(p.id == f"pane-{pane}", "-active")
        self.query_one(TabBar).show(pane)
        target = self.query_one(PassGrid) if pane == "grid" else self.query_one(f"#pane-{pane}")
        if pane == "events":
            target = self.query_one(EventLog)
        target.focus()

    def action_browse(self) -> None:
        self.sdtui.open_samples(self.cid)

    def action_toggle_split(self) -> None:
        split = self.query_one(BucketPanel).toggle_split()
        self.notify(f"Buckets and transitions: {'train' if split == 'train' else 'held-out'} problems", timeout=2)

    def action_transition_round(self, delta: int) -> None:
        self.query_one(BucketPanel).step_round(delta)

    def palette_commands(self) -> list[tuple[str, str, str]]:
        return [
            ("Dashboard: show problems (pass-count grid)", "show_pane('grid')", "1"),
            ("Dashboard: show bucket split and transitions", "show_pane('buckets')", "2"),
            ("Dashboard: show diversity gauge", "show_pane('diversity')", "3"),
            ("Dashboard: show pass@k chart", "show_pane('passk')", "4"),
            ("Dashboard: show event log", "show_pane('events')", "5"),
            ("Dashboard: toggle train / held-out buckets", "toggle_split", "h"),
            ("Open the sample browser", "browse", "b"),
        ]
