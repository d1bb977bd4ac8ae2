"""What the screens show, read from the store: plain dataclasses built in worker threads.

No Textual here (the benchmark and tests call these directly). Each loader keeps what it needs to
answer "what changed since the last poll" so that a refresh re-reads and re-renders only that.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from typing import Any

from engine.store import ACTIVE, Store, display_status

from sdtui.fmt import natural_key

STATUSES = ("passed", "failed", "timed out", "error", "pending")


# ---------------------------------------------------------------------------- campaign config
@dataclass(frozen=True)
class ConfigInfo:
    """The settings of a campaign that the TUI shows, from the TOML stored with it."""

    rounds: int = 3
    n: int = 8
    eval_n: int = 8
    k: tuple[int, ...] = (1, 8)
    model: str = "?"
    temperature: float = 0.8
    source: str = "?"
    warn_fraction: float = 0.7
    stop_fraction: float = 0.5
    on_collapse: str = "warn"
    hints: bool = False  # hinted re-sampling of unsolved train problems (the round's `hint` stage)
    adaptive: bool = False  # the train problems' sample budget follows the previous round


def config_info(text: str) -> ConfigInfo:
    """Validated through engine.config when it accepts the text, else read leniently (older configs)."""
    try:
        from engine.config import parse_config

        cfg = parse_config(text)
        return ConfigInfo(
            rounds=cfg.rounds, n=cfg.sampling.n, eval_n=cfg.eval_n, k=tuple(cfg.eval.k), model=cfg.model.spec,
            temperature=cfg.sampling.temperature, source=cfg.problems.source,
            warn_fraction=cfg.collapse.warn_fraction, stop_fraction=cfg.collapse.stop_fraction,
            on_collapse=cfg.collapse.on_collapse, hints=cfg.hint.enabled, adaptive=cfg.budget.adaptive,
        )
    except Exception:
        pass
    try:
        d = tomllib.loads(text or "")
    except tomllib.TOMLDecodeError:
        return ConfigInfo()
    s, e, c = d.get("sampling", {}), d.get("eval", {}), d.get("collapse", {})
    n = int(s.get("n", 8))
    return ConfigInfo(
        rounds=int(d.get("rounds", 3)), n=n, eval_n=int(e.get("n", 0) or n), k=tuple(e.get("k", (1, 8))),
        model=str(d.get("model", {}).get("spec", "?")), temperature=float(s.get("temperature", 0.8)),
        source=str(d.get("problems", {}).get("source", "?")), warn_fraction=float(c.get("warn_fraction", 0.7)),
        stop_fraction=float(c.get("stop_fraction", 0.5)), on_collapse=str(c.get("on_collapse", "warn")),
    )


def split_metric(metrics: dict | None, split: str, key: str) -> Any:
    return ((metrics or {}).get(split) or {}).get(key)


def gauge_view(metrics: dict | None) -> tuple[float | None, list[tuple[str, float | None, float | None, bool, str]]]:
    """The gauge value and its components as (name, relative to r0, raw value, in the gauge, note).

    Accepts the engine's shape ({"gauge": v, "components": {k: {"relative", "value", "in_gauge", "note"}}})
    and the flat one ({"value": v, "components": {k: relative}}), so older rows still render.
    """
    g = (metrics or {}).get("gauge") or {}
    if not isinstance(g, dict):
        return (float(g) if isinstance(g, (int, float)) else None), []
    value = g.get("value", g.get("gauge"))
    raw_div = (metrics or {}).get("diversity") or {}
    comps = []
    for name, c in (g.get("components") or {}).items():
        if isinstance(c, dict):
            comps.append((str(name), c.get("relative"), c.get("value"), bool(c.get("in_gauge", True)), str(c.get("note") or "")))
        else:
            raw = raw_div.get(name)
            comps.append((str(name), c if isinstance(c, (int, float)) else None,
                          raw if isinstance(raw, (int, float)) else None, True, ""))
    return value, comps


def is_measured(r: dict) -> bool:
    """Whether a round's metrics stage has run. Its metrics row exists earlier: the train stage
    records its figures there before the round is sampled."""
    return bool(r.get("metrics")) and "train" in r["metrics"]


def last_metrics(rounds: list[dict]) -> dict | None:
    for r in reversed(rounds):
        if is_measured(r):
            return r["metrics"]
    return None


def allowed_verbs(status: str) -> set[str]:
    """Which controls make sense for a campaign in this (display) status.

    'resume' on a paused campaign is a command row; on a lost engine or a stopped/failed campaign
    it means restarting the engine through the CLI (`sdtui resume ID`).
    """
    if status in ("running", "starting"):
        return {"pause", "stop", "stop_after_round"}
    if status == "paused":
        return {"resume", "stop", "stop_after_round"}
    if status in ("engine lost", "stopped", "failed"):
        return {"resume"}
    return set()


# ---------------------------------------------------------------------------- campaigns list
@dataclass(frozen=True)
class CampaignSummary:
    id: int
    name: str
    status: str  # display status (includes "engine lost")
    stage: str | None
    round: int | None
    rounds_total: int
    pass1_train: float | None
    pass1_heldout: float | None
    gauge: float | None
    collapse: str | None  # ok | warn | collapse
    collapse_reason: str
    created: float
    error: str | None
    model: str


class CampaignLister:
    """Summaries of every campaign; finished campaigns' rounds are read once and cached."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[tuple, ConfigInfo, dict | None]] = {}

    def load(self, store: Store, now: float) -> list[CampaignSummary]:
        out = []
        for c in store.campaigns():
            key = (c["status"], c["stage"], c["round"], c["updated"])
            cached = self._cache.get(c["id"])
            if cached is None or cached[0] != key or c["status"] in ACTIVE:
                info = cached[1] if cached else config_info(c["config"])
                cached = (key, info, last_metrics(store.rounds(c["id"])))
                self._cache[c["id"]] = cached
            _, info, m = cached
            collapse = (m or {}).get("collapse") or {}
            out.append(CampaignSummary(
                id=c["id"], name=c["name"], status=display_status(c, now), stage=c["stage"], round=c["round"],
                rounds_total=info.rounds, pass1_train=split_metric(m, "train", "pass@1"),
                pass1_heldout=split_metric(m, "heldout", "pass@1"),
                gauge=gauge_view(m)[0], collapse=collapse.get("state"),
                collapse_reason=collapse.get("reason", ""), created=c["created"], error=c.get("error"),
                model=info.model,
            ))
        return out


# ---------------------------------------------------------------------------- dashboard
@dataclass(frozen=True)
class GridRow:
    """One problem in the pass-count grid: (n, c, bucket, hinted passes) per round, None where not
    measured yet. n varies by round under an adaptive budget: it is the problem's allocation."""

    task_id: str
    split: str
    cells: tuple[tuple[int, int, str, int] | None, ...]
    live: tuple[int, int, int] | None  # (round, n so far, passed so far) of the round being sampled/verified
    unsolvable: bool
    gain: float | None  # share passing: last measured round minus round 0

    @property
    def last_share(self) -> float:
        for cell in reversed(self.cells):
            if cell:
                return cell[1] / cell[0] if cell[0] else 0.0
        return -1.0


@dataclass
class DashboardData:
    campaign: dict
    status: str
    info: ConfigInfo
    rounds: list[dict] | None = None  # None: unchanged since the last update
    grid: list[GridRow] | None = None  # None: unchanged
    events: list[dict] = field(default_factory=list)  # new events only
    first: bool = False


class DashboardLoader:
    """Polls one campaign; `load` returns None when nothing visible changed."""

    def __init__(self, cid: int) -> None:
        self.cid = cid
        self.info: ConfigInfo | None = None
        self._problems: list[tuple[str, str]] | None = None
        self._last_event = 0
        self._rounds_sig: tuple | None = None
        self._rounds: list[dict] = []
        self._stats: dict[tuple[int, str], tuple[int, int, str, int]] = {}
        self._live: dict[str, tuple[int, int]] = {}
        self._live_round: int | None = None
        self._live_sig: tuple | None = None
        self._campaign: dict | None = None
        self._status: str | None = None

    def load(self, store: Store, now: float) -> DashboardData | None:
        c = store.campaign(self.cid)
        if c is None:
            return None
        first = self.info is None
        if first:
            self.info = config_info(c["config"])
            self._problems = [(p.task_id, split) for p, split in store.problems(self.cid)]
        status = display_status(c, now)
        rounds = store.rounds(self.cid)
        sig = tuple((r["round"], r["stage"], r["finished"], is_measured(r), repr(r["timings"])) for r in rounds)
        rounds_changed = sig != self._rounds_sig
        grid_changed = first
        if rounds_changed:
            old_done = {k[0] for k in (self._rounds_sig or ()) if k[3]}
            new_done = {k[0] for k in sig if k[3]}
            self._rounds_sig, self._rounds = sig, rounds
            if new_done != old_done or first:
                self._stats = {
                    (s["round"], s["task_id"]): (s["n"], s["c"], s["bucket"], s.get("hint_c") or 0)
                    for s in store.problem_stats(self.cid)
                }
                grid_changed = True
        # Live pass counts of the round being sampled or verified (before its metrics exist).
        live_round = self._round_in_progress(c, rounds)
        live_sig = (live_round, repr(c.get("progress")))
        if live_sig != self._live_sig:
            self._live_sig = live_sig
            live = store.pass_counts(self.cid, live_round) if live_round is not None else {}
            if live != self._live or live_round != self._live_round:
                self._live, self._live_round = live, live_round
                grid_changed = True
        events = store.events(self.cid, limit=200, after_id=self._last_event)
        if events:
            self._last_event = events[-1]["id"]
        campaign_changed = c != self._campaign or status != self._status
        self._campaign, self._status = c, status
        if not (first or rounds_changed or grid_changed or events or campaign_changed):
            return None
        return DashboardData(
            campaign=c, status=status, info=self.info, rounds=rounds if (rounds_changed or first) else None,
            grid=self._grid() if grid_changed else None, events=events, first=first,
        )

    def _round_in_progress(self, c: dict, rounds: list[dict]) -> int | None:
        if c["status"] not in ACTIVE or c.get("round") is None:
            return None
        cur = next((r for r in rounds if r["round"] == c["round"]), None)
        if cur is not None and is_measured(cur):
            return None
        return c["round"]

    def _grid(self) -> list[GridRow]:
        assert self.info is not None
        n_rounds = max([self.info.rounds + 1] + [r + 1 for r, _ in self._stats] + [(self._live_round or 0) + 1])
        rows = []
        for task_id, split in self._problems or []:
            cells = tuple(self._stats.get((r, task_id)) for r in range(n_rounds))
            counts = self._live.get(task_id)
            live = (self._live_round, *counts) if counts and self._live_round is not None else None
            measured = [cell for cell in cells if cell]
            ever = any(cell[1] > 0 for cell in measured) or bool(live and live[2] > 0)
            gain = None
            if len(measured) >= 2 and measured[0][0] and measured[-1][0]:
                gain = measured[-1][1] / measured[-1][0] - measured[0][1] / measured[0][0]
            rows.append(GridRow(task_id, split, cells, live, unsolvable=bool(measured) and not ever, gain=gain))
        return rows


GRID_SORTS = ("gain", "task id", "pass count")
GRID_FILTERS = ("all", "barely at r0", "unsolvable", "hinted", "train", "heldout")


def sort_grid(rows: list[GridRow], key: str, reverse: bool = False) -> list[GridRow]:
    if key == "gain":
        out = sorted(rows, key=lambda r: (r.gain is None, -(r.gain or 0.0), natural_key(r.task_id)))
    elif key == "pass count":
        out = sorted(rows, key=lambda r: (-r.last_share, natural_key(r.task_id)))
    else:
        out = sorted(rows, key=lambda r: natural_key(r.task_id))
    return out[::-1] if reverse else out


def filter_grid(rows: list[GridRow], which: str) -> list[GridRow]:
    if which == "barely at r0":
        return [r for r in rows if r.cells and r.cells[0] and r.cells[0][2] == "barely"]
    if which == "unsolvable":
        return [r for r in rows if r.unsolvable]
    if which == "hinted":  # a hinted re-sample passed in some round
        return [r for r in rows if any(cell and cell[3] for cell in r.cells)]
    if which in ("train", "heldout"):
        return [r for r in rows if r.split == which]
    return rows


# ---------------------------------------------------------------------------- sample browser
LIST_COLUMNS = "id, round, task_id, idx, purpose, status, n_tokens, duration"


@dataclass(frozen=True)
class SampleFilter:
    round: int | None = None
    task_id: str | None = None
    status: str | None = None
    text: str | None = None


def load_sample(store: Store, sid: int) -> dict | None:
    """One sample for the browser, with its problem's sample budget in that round (`allocation`:
    [(kind, n, reason)], empty for held-out problems and campaigns from before budgets)."""
    s = store.sample(sid)
    if s is not None:
        s["allocation"] = [(a["kind"], a["n"], a["reason"]) for a in store.allocations(s["campaign"], s["task_id"])
                           if a["round"] == s["round"]]
    return s


def load_sample_list(store: Store, cid: int, f: SampleFilter, limit: int = 5000) -> list[dict]:
    return store.samples(cid, rnd=f.round, task_id=f.task_id or None, status=f.status, text=f.text or None,
                         limit=limit, columns=LIST_COLUMNS)
