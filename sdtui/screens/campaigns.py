"""Every campaign in the workspace: status, round and stage, pass@1, diversity gauge, age; controls."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Header, Static

from engine.store import Store

from sdtui.data import CampaignLister, CampaignSummary
from sdtui.fmt import STATUS_STYLE, age, num, one_line, pct, theme_styles
from sdtui.messages import CampaignsLoaded
from sdtui.screens.base import CONTROL_BINDINGS, ControlMixin, StoreScreen
from sdtui.widgets.keybar import KeyBar

COLUMNS = [("#", "id"), ("name", "name"), ("status", "status"), ("round", "round"), ("stage", "stage"),
           ("pass@1 tr/ho", "pass1"), ("gauge", "gauge"), ("age", "age")]


class CampaignsScreen(ControlMixin, StoreScreen):
    BINDINGS = [
        Binding("enter", "open", "Open", show=False),
        Binding("n", "launch", "New"),
        *CONTROL_BINDINGS,
    ]

    def __init__(self) -> None:
        super().__init__()
        self.lister = CampaignLister()
        self.rows: list[CampaignSummary] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="campaigns", cursor_type="row")
        yield Static(id="campaign-detail")
        yield KeyBar()

    def on_mount(self) -> None:
        self.sub_title = "campaigns"
        table = self.query_one(DataTable)
        for label, key in COLUMNS:
            table.add_column(label, key=key)
        table.focus()

    def poll(self, store: Store, now: float) -> CampaignsLoaded | None:
        rows = self.lister.load(store, now)
        if rows == getattr(self, "_last_polled", None):
            return None
        self._last_polled = rows
        return CampaignsLoaded(rows)

    def on_campaigns_loaded(self, message: CampaignsLoaded) -> None:
        self.rows = message.rows
        self._fill()
        self.loaded = True

    def _cells(self, c: CampaignSummary, st: dict) -> list:
        now = self.sdtui.now()
        status = Text(c.status, style=st[STATUS_STYLE.get(c.status, "muted")])
        gauge = Text(num(c.gauge, 0))
        if c.collapse in ("warn", "collapse"):
            gauge = Text(f"{num(c.gauge, 0)}⚠", style=st[c.collapse])
        rnd = "–" if c.round is None else f"{c.round}/{c.rounds_total}"
        stage = "" if c.status == "finished" else one_line(c.stage or "", 8)
        return [Text(str(c.id)), Text(one_line(c.name, 24)), status, Text(rnd), Text(stage),
                Text(f"{pct(c.pass1_train, 1)}/{pct(c.pass1_heldout, 1)}"), gauge, Text(age(now - c.created))]

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        st = theme_styles(self.app)
        ids = [c.id for c in self.rows]
        current = [k.value for k in table.rows]
        if current == [str(i) for i in ids]:
            for c in self.rows:  # same campaigns: update in place (no flicker, cursor stays)
                for (_, key), value in zip(COLUMNS, self._cells(c, st)):
                    table.update_cell(str(c.id), key, value, update_width=True)
        else:
            keep = self.selected()
            table.clear()
            for c in self.rows:
                table.add_row(*self._cells(c, st), key=str(c.id))
            if keep is not None and keep.id in ids:
                table.move_cursor(row=ids.index(keep.id), animate=False)
            elif self.rows:
                table.move_cursor(row=len(self.rows) - 1, animate=False)  # the newest campaign
        self._show_detail()

    def selected(self) -> CampaignSummary | None:
        table = self.query_one(DataTable)
        if not self.rows or table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        except Exception:
            return None
        return next((c for c in self.rows if str(c.id) == key), None)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def _show_detail(self) -> None:
        detail = self.query_one("#campaign-detail", Static)
        st = theme_styles(self.app)
        if not self.rows:
            detail.update(Text.assemble(
                ("No campaigns in this workspace yet.\n", st["bold"]),
                "Press n to launch one from a campaign file, or run `sdtui start campaigns/demo.toml`.",
            ))
            return
        c = self.selected()
        if c is None:
            detail.update("")
            return
        t = Text()
        t.append(f"#{c.id} {one_line(c.name, 40)}", st["bold"])
        t.append(f"  model {one_line(c.model, 40)}", st["muted"])
        if c.collapse in ("warn", "collapse"):
            t.append(f"\n⚠ diversity {c.collapse}: {one_line(c.collapse_reason, 200)}", st[c.collapse])
        if c.status == "engine lost":
            t.append("\nEngine lost (no heartbeat): r resumes it.", st["error"])
        if c.error:
            t.append(f"\n{one_line(c.error, 200)}", st["error"])
        t.append("\nenter dashboard · b samples · n new · ? all keys", st["muted"])
        detail.update(t)

    def theme_changed(self) -> None:
        self._fill()  # same rows: every cell is re-rendered in the new theme's colours

    # -- actions
    def control_target(self) -> tuple[int, str, str] | None:
        c = self.selected()
        return None if c is None else (c.id, c.name, c.status)

    def action_open(self) -> None:
        c = self.selected()
        if c is not None:
            from sdtui.screens.dashboard import DashboardScreen

            self.app.push_screen(DashboardScreen(c.id))

    def action_browse(self) -> None:
        c = self.selected()
        if c is not None:
            self.sdtui.open_samples(c.id)

    def action_launch(self) -> None:
        from sdtui.screens.launch import LaunchScreen

        self.app.push_screen(LaunchScreen())

    def palette_commands(self) -> list[tuple[str, str, str]]:
        return [
            ("Open the selected campaign's dashboard", "open", "enter"),
            ("Launch a new campaign", "launch", "n"),
            ("Open the sample browser", "browse", "b"),
        ]
