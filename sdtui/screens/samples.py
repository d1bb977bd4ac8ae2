"""The sample browser: filter a campaign's samples, read one (prompt + completion, verdict), step, compare.

Filters: round, status, problem (task id), text (in the program or the verifier's message). j/k step
through the list from anywhere; m marks a sample, c compares it side by side with the current one and
d shows their diff.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.events import Resize
from textual.screen import Screen
from textual.suggester import SuggestFromList
from textual.timer import Timer
from textual.widgets import Header, Input, Select, Static

from engine.store import Store, display_status

from sdtui.data import STATUSES, SampleFilter, load_sample, load_sample_list
from sdtui.fmt import one_line, safe, theme_styles
from sdtui.messages import SampleLoaded, SamplesLoaded, _DataMessage
from sdtui.screens.base import ControlMixin, StoreScreen
from sdtui.widgets.code import SAMPLE_STATUS_STYLE, diff_view, sample_view
from sdtui.widgets.rowlist import RowList
from sdtui.widgets.keybar import KeyBar

LIST_LIMIT = 5000
LIST_COLUMNS = [("id", "id", 7), ("r", "round", 2), ("task", "task", 18), ("#", "idx", 3), ("kind", "purpose", 5),
                ("status", "status", 9), ("tok", "tok", 4)]
WIDE_W = 120


@dataclass
class BrowserReady(_DataMessage):
    prompts: dict[str, str]
    rounds: list[int]
    name: str
    status: str


@dataclass
class CampaignStatus(_DataMessage):
    name: str
    status: str


class SamplesScreen(ControlMixin, StoreScreen):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("j", "step(1)", "Next"),
        Binding("k", "step(-1)", "Previous", show=False),
        Binding("slash", "focus_text", "Search"),
        Binding("o", "toggle_raw", "Raw output", show=False),
        Binding("m", "mark", "Mark"),
        Binding("c", "compare(False)", "Compare"),
        Binding("d", "compare(True)", "Diff"),
        Binding("p", "control('pause')", "Pause", show=False),
        Binding("r", "control('resume')", "Resume", show=False),
        Binding("x", "control('stop')", "Stop", show=False),
        Binding("a", "control('stop_after_round')", "Stop after round", show=False),
    ]

    def __init__(self, cid: int, task_id: str | None = None, round: int | None = None,
                 status: str | None = None) -> None:
        super().__init__()
        self.cid = cid
        self.filter = SampleFilter(round=round, task_id=task_id, status=status)
        self.rows: list[dict] = []
        self.prompts: dict[str, str] = {}
        self.current: dict | None = None
        self.current_id: int | None = None
        self.marked: dict | None = None
        self.raw = False
        self.campaign_name = ""
        self.status = ""
        self._token = 0
        self._pending_compare: bool | None = None  # c/d pressed while the current sample was loading
        self._text_timer: Timer | None = None
        self.known_rounds: list[int] = []
        self._round_options: list | None = None  # the round menu's options as last set
        self._open_from = None  # the screen from which the browser is being opened (see open_when_loaded)
        self.list_seconds: float | None = None  # how long the last list query took (shown, and for tests)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="filters"):
            rounds = [("all rounds", -1)] + ([] if self.filter.round is None else [(f"round {self.filter.round}", self.filter.round)])
            yield Select(rounds, value=-1 if self.filter.round is None else self.filter.round,
                         allow_blank=False, compact=True, id="f-round")
            yield Select([("any status", "")] + [(s, s) for s in STATUSES], value=self.filter.status or "",
                         allow_blank=False, compact=True, id="f-status")
            yield Input(self.filter.task_id or "", placeholder="problem (task id)", compact=True, id="f-task")
            yield Input(placeholder="/ text in code or error", compact=True, id="f-text")
        with Container(id="browser"):
            with Vertical(id="sample-list-box"):
                yield Static(id="sample-list-head")
                yield RowList(id="sample-list")
            with VerticalScroll(id="sample-view"):
                yield Static(id="sample-body")
        yield Static(id="sample-count")
        yield KeyBar()

    def on_mount(self) -> None:
        head = Text(" ".join(f"{label:>{w}}" if key in ("id", "idx", "tok") else f"{label:<{w}}"
                             for label, key, w in LIST_COLUMNS), style="bold")
        self.query_one("#sample-list-head", Static).update(head)
        self.query_one(RowList).focus()
        self.sub_title = f"samples of campaign #{self.cid}"
        self._layout(self.app.size.width)
        cid, now = self.cid, self.sdtui.now

        def ready(store: Store) -> BrowserReady:
            c = store.campaign(cid) or {"name": "?", "status": "?"}
            prompts = {p.task_id: p.prompt for p, _ in store.problems(cid)}
            rounds = [r["round"] for r in store.rounds(cid)]
            status = display_status(c, now()) if "created" in c else "?"
            return BrowserReady(prompts, rounds, c["name"], status)

        self.request(ready)
        self.reload()

    def on_resize(self, event: Resize) -> None:
        self._layout(event.size.width)

    def _layout(self, width: int) -> None:
        self.set_class(width >= WIDE_W, "-wide")

    # -- data
    def poll(self, store: Store, now: float) -> CampaignStatus | None:
        c = store.campaign(self.cid)
        if c is None:
            return None
        status = display_status(c, now)
        if status != self.status:
            return CampaignStatus(c["name"], status)
        return None

    def on_campaign_status(self, message: CampaignStatus) -> None:
        self.campaign_name, self.status = message.name, message.status
        self.sub_title = f"samples · #{self.cid} {one_line(self.campaign_name, 30)} · {self.status}"

    def on_browser_ready(self, message: BrowserReady) -> None:
        self.prompts = message.prompts
        self.known_rounds = message.rounds
        self.campaign_name, self.status = message.name, message.status
        self.sub_title = f"samples · #{self.cid} {one_line(self.campaign_name, 30)} · {self.status}"
        select = self.query_one("#f-round", Select)
        value = select.value
        select.set_options([("all rounds", -1)] + [(f"round {r}", r) for r in message.rounds])
        if value in [-1, *message.rounds]:
            select.value = value
        task = self.query_one("#f-task", Input)
        task.suggester = SuggestFromList(sorted(self.prompts), case_sensitive=False)

    def show(self, task_id: str | None = None, round: int | None = None, status: str | None = None) -> bool:
        """Set the filters (text cleared) and reload; used when the browser is opened on a problem.
        Returns whether a reload was asked for (False: the filters were already these)."""
        f = SampleFilter(round=round, task_id=task_id, status=status)
        if not self.is_mounted:
            self.filter = f  # compose shows it
            return False
        with self.prevent(Select.Changed, Input.Changed):
            select = self.query_one("#f-round", Select)
            known = self.known_rounds or ([] if round is None else [round])
            if round is not None and round not in known:
                known = sorted(set(known) | {round})
            options = [("all rounds", -1)] + [(f"round {r}", r) for r in known]
            if options != self._round_options:  # rebuilding the menu costs a layout
                select.set_options(options)
                self._round_options = options
            select.value = -1 if round is None else round
            self.query_one("#f-status", Select).value = status or ""
            self.query_one("#f-task", Input).value = task_id or ""
            self.query_one("#f-text", Input).value = ""
        self.query_one(RowList).focus()
        if f != self.filter:
            self.filter = f
            self.reload()
            return True
        return False

    def open_when_loaded(self) -> None:
        """Show this (installed, hidden) browser once the new list and its first sample are in, or
        after 0.3 s at the latest: one layout of the finished screen instead of one of the previous
        problem's samples and another when the new ones arrive (which also flashed the old ones)."""
        self._open_from = self.app.screen
        self.app.set_timer(0.3, self._open_now)

    def _open_now(self) -> None:
        opener, self._open_from = self._open_from, None
        if opener is not None and self.app.screen is opener:  # the user has not gone elsewhere meanwhile
            self.app.push_screen(self)

    def reload(self) -> None:
        """Re-run the list query for the current filter (latest request wins)."""
        self._token += 1
        token, cid, f, keep = self._token, self.cid, self.filter, self.current_id

        def load(store: Store) -> SamplesLoaded:
            t0 = time.perf_counter()
            rows = load_sample_list(store, cid, f, limit=LIST_LIMIT)
            first = None
            if rows:
                first = load_sample(store, keep if any(r["id"] == keep for r in rows) else rows[0]["id"])
            return SamplesLoaded(rows, token, time.perf_counter() - t0, first)

        self.request(load)

    def on_samples_loaded(self, message: SamplesLoaded) -> None:
        if message.token != self._token:
            return  # an older filter's answer
        self.rows = message.rows
        self.list_seconds = message.seconds
        rows_view = self.query_one(RowList)
        keep = self.current_id
        st = theme_styles(self.app)
        ids = [r["id"] for r in self.rows]
        self._count_line()
        if not self.rows:
            rows_view.set_rows(0, self._row_text)
            self.current, self.current_id = None, None
            self.query_one("#sample-body", Static).update(
                Text("No samples match these filters.", style=st["muted"]))
            self.loaded = True
            self._open_now()
            return
        first = message.first
        target = first["id"] if first else (keep if keep in ids else ids[0])
        self.current_id = target  # before moving the cursor: the highlight then loads nothing
        rows_view.set_rows(len(self.rows), self._row_text, cursor=ids.index(target))
        if first is not None and (self.current is None or self.current["id"] != first["id"]):
            self.on_sample_loaded(SampleLoaded(first, self.prompts.get(first["task_id"], ""), "main"))
        elif first is None:
            self.load_sample(target)

    def _row_text(self, i: int) -> Text:
        """One line of the sample list (built only when the row scrolls into view)."""
        r = self.rows[i]
        st = self._row_style_map
        mark = "*" if self.marked and self.marked["id"] == r["id"] else ""
        t = Text(f"{mark}{r['id']:>{7 - len(mark)}} {r['round']:<2} {one_line(r['task_id'], 18):<18} {r['idx']:>3} ",
                 no_wrap=True)
        t.append(f"{r['purpose'][:5]:<5} ", st["accent"] if r["purpose"] == "hint" else st["muted"])
        t.append(f"{r['status']:<9} ", st[SAMPLE_STATUS_STYLE.get(r["status"], "muted")])
        t.append(f"{'' if r.get('n_tokens') is None else r['n_tokens']:>4}", st["muted"])
        return t

    @property
    def _row_style_map(self) -> dict:
        if getattr(self, "_row_styles_for", None) != self.app.theme:
            self._row_styles_for, self._row_styles = self.app.theme, theme_styles(self.app)
        return self._row_styles

    def _count_line(self) -> None:
        st = theme_styles(self.app)
        f = self.filter
        parts = [f"{len(self.rows)}{'+' if len(self.rows) >= LIST_LIMIT else ''} samples"]
        if f.round is not None:
            parts.append(f"round {f.round}")
        if f.task_id:
            parts.append(safe(f.task_id))
        if f.status:
            parts.append(f.status)
        if f.text:
            parts.append(f"text {safe(f.text)!r}")
        if self.marked:
            parts.append(f"marked #{self.marked['id']}")
        self.query_one("#sample-count", Static).update(Text(" · ".join(parts), style=st["muted"]))

    def load_sample(self, sid: int) -> None:
        self.current_id = sid
        cid = self.cid

        def load(store: Store) -> SampleLoaded | None:
            s = load_sample(store, sid)
            if s is None or s["campaign"] != cid:
                return None
            return SampleLoaded(s, self.prompts.get(s["task_id"], ""), "main")

        self.request(load)

    def on_sample_loaded(self, message: SampleLoaded) -> None:
        if message.slot != "main" or message.sample["id"] != self.current_id:
            return
        self.current = message.sample
        if not message.prompt and self.prompts:
            message.prompt = self.prompts.get(message.sample["task_id"], "")
        self._render_current(message.prompt)
        self.loaded = True
        self._open_now()
        if self._pending_compare is not None:
            diff, self._pending_compare = self._pending_compare, None
            self.action_compare(diff)

    def _render_current(self, prompt: str | None = None) -> None:
        if self.current is None:
            return
        if prompt is None:
            prompt = self.prompts.get(self.current["task_id"], "")
        body = sample_view(self.app, self.current, prompt, raw=self.raw,
                           marked=self.marked["id"] if self.marked else None)
        self.query_one("#sample-body", Static).update(body)
        self.query_one("#sample-view", VerticalScroll).scroll_home(animate=False)

    def on_row_list_highlighted(self, event: RowList.Highlighted) -> None:
        if 0 <= event.index < len(self.rows):
            sid = self.rows[event.index]["id"]
            if sid != self.current_id:
                self.load_sample(sid)

    def on_row_list_selected(self, event: RowList.Selected) -> None:
        self.query_one("#sample-view", VerticalScroll).focus()

    # -- filters
    @on(Select.Changed, "#f-round")
    def _round_changed(self, event: Select.Changed) -> None:
        value = None if event.value in (-1, Select.NULL) else int(event.value)
        self._set_filter(round=value)

    @on(Select.Changed, "#f-status")
    def _status_changed(self, event: Select.Changed) -> None:
        self._set_filter(status=event.value or None if event.value is not Select.NULL else None)

    @on(Input.Submitted, "#f-task")
    def _task_submitted(self, event: Input.Submitted) -> None:
        self._set_filter(task_id=event.value.strip() or None)
        self.query_one("#sample-list").focus()

    @on(Input.Changed, "#f-task")
    def _task_changed(self, event: Input.Changed) -> None:
        value = event.value.strip()
        if not value or value in self.prompts:
            self._set_filter(task_id=value or None)

    @on(Input.Changed, "#f-text")
    def _text_changed(self, event: Input.Changed) -> None:
        if self._text_timer is not None:
            self._text_timer.stop()
        value = event.value
        self._text_timer = self.set_timer(0.3, lambda: self._set_filter(text=value or None))

    @on(Input.Submitted, "#f-text")
    def _text_submitted(self, event: Input.Submitted) -> None:
        if self._text_timer is not None:
            self._text_timer.stop()
        self._set_filter(text=event.value or None)
        self.query_one("#sample-list").focus()

    def _set_filter(self, **changes) -> None:
        f = SampleFilter(**{**self.filter.__dict__, **changes})
        if f != self.filter:
            self.filter = f
            self.reload()

    # -- actions
    def control_target(self) -> tuple[int, str, str] | None:
        return (self.cid, self.campaign_name, self.status) if self.status else None

    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            self.query_one("#sample-list").focus()
            return
        self.app.pop_screen()

    def action_step(self, delta: int) -> None:
        rows_view = self.query_one(RowList)
        rows_view.move_to(rows_view.cursor + delta)

    def action_focus_text(self) -> None:
        self.query_one("#f-text", Input).focus()

    def action_toggle_raw(self) -> None:
        self.raw = not self.raw
        self._render_current()

    def action_mark(self) -> None:
        if self.current is None:
            return
        old = self.marked
        self.marked = None if old and old["id"] == self.current["id"] else self.current
        index = {r["id"]: i for i, r in enumerate(self.rows)}
        self.query_one(RowList).refresh_rows(*(index[x["id"]] for x in (old, self.marked) if x and x["id"] in index))
        self._render_current()
        self._count_line()
        if self.marked:
            self.notify(f"Marked #{self.marked['id']}; on another sample of {safe(self.marked['task_id'])}: "
                        "c side by side, d diff", timeout=4)

    def action_compare(self, diff: bool) -> None:
        if self.current is not None and self.current["id"] != self.current_id:
            self._pending_compare = diff  # the sample under the cursor is still loading
            return
        a, b = self.marked, self.current
        if a is None or b is None or a["id"] == b["id"]:
            self.notify("First mark a sample with m, then move to another sample of its problem",
                        severity="warning")
            return
        if a["task_id"] != b["task_id"]:
            self.notify(f"Compare needs two samples of the same problem (#{a['id']} is {safe(a['task_id'])}, "
                        f"#{b['id']} is {safe(b['task_id'])})", severity="warning")
            return
        self.app.push_screen(CompareScreen(a, b, self.prompts.get(a["task_id"], ""), diff=diff))

    def theme_changed(self) -> None:
        self.query_one(RowList).refresh_rows()
        self._render_current()

    def palette_commands(self) -> list[tuple[str, str, str]]:
        return [
            ("Samples: next sample", "step(1)", "j"),
            ("Samples: previous sample", "step(-1)", "k"),
            ("Samples: search text", "focus_text", "/"),
            ("Samples: mark for compare", "mark", "m"),
            ("Samples: compare side by side with the marked sample", "compare(False)", "c"),
            ("Samples: diff against the marked sample", "compare(True)", "d"),
            ("Samples: toggle the model's raw output", "toggle_raw", "o"),
        ]


class CompareScreen(Screen):
    """Two samples of one problem, side by side or as a unified diff (d toggles)."""

    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("d", "toggle_diff", "Side by side / diff"),
    ]

    def __init__(self, a: dict, b: dict, prompt: str, diff: bool = False) -> None:
        super().__init__()
        self.a, self.b, self.prompt, self.diff = a, b, prompt, diff
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="compare-side"):
            with VerticalScroll(id="compare-a", classes="compare-pane"):
                yield Static(id="compare-a-body")
            with VerticalScroll(id="compare-b", classes="compare-pane"):
                yield Static(id="compare-b-body")
        with VerticalScroll(id="compare-diff"):
            yield Static(id="compare-diff-body")
        yield KeyBar()

    def on_mount(self) -> None:
        self.sub_title = f"compare #{self.a['id']} and #{self.b['id']} of {one_line(self.a['task_id'], 30)}"
        self.query_one("#compare-a-body", Static).update(sample_view(self.app, self.a, self.prompt))
        self.query_one("#compare-b-body", Static).update(sample_view(self.app, self.b, self.prompt))
        self.query_one("#compare-diff-body", Static).update(diff_view(self.app, self.a, self.b, self.prompt))
        self._show()
        self.loaded = True

    def _show(self) -> None:
        self.query_one("#compare-side").display = not self.diff
        self.query_one("#compare-diff").display = self.diff
        (self.query_one("#compare-diff") if self.diff else self.query_one("#compare-a")).focus()

    def action_toggle_diff(self) -> None:
        self.diff = not self.diff
        self._show()

    def theme_changed(self) -> None:
        self.on_mount()

