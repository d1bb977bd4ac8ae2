"""The diversity gauge per round (round 0 = 100), its components, and the collapse warning.

Component names come from the engine's diversity module and are rendered generically.
"""

from __future__ import annotations

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from sdtui.data import ConfigInfo, gauge_view
from sdtui.fmt import bar, num, one_line, theme_styles


class DiversityGauge(Widget):
    DEFAULT_CSS = "DiversityGauge { height: auto; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rounds: list[dict] = []
        self.info = ConfigInfo()
        self.active = False  # the campaign can still be stopped after this round

    def set_rounds(self, rounds: list[dict], info: ConfigInfo, active: bool = False) -> None:
        self.rounds, self.info, self.active = rounds, info, active
        self.refresh(layout=True)

    @property
    def collapse(self) -> dict:
        for r in reversed(self.rounds):
            c = (r.get("metrics") or {}).get("collapse")
            if c:
                return c
        return {}

    def render(self) -> Group | Text:
        st = theme_styles(self.app)
        measured = [(r["round"], r["metrics"], *gauge_view(r["metrics"])) for r in self.rounds
                    if (r.get("metrics") or {}).get("gauge") is not None]
        if not measured:
            return Text("No diversity measured yet (round 0 sets the baseline = 100).", style=st["muted"])
        width = self.size.width or 60
        parts: list = []
        c = self.collapse
        state = c.get("state", "ok")
        if state in ("warn", "collapse"):
            head = Text()
            head.append("⚠ MODE COLLAPSE: " if state == "collapse" else "⚠ DIVERSITY FALLING: ", st[state])
            head.append(one_line(c.get("reason", "")), st["warning"] if state == "warn" else st["error"])
            parts.append(head)
            if self.active:
                parts.append(Text("Press a to stop after this round (the usual answer to a collapse).",
                                  style=st["muted"]))
        else:
            parts.append(Text("✓ diversity ok" + (f": {one_line(c['reason'])}" if c.get("reason") else ""),
                              style=st["success"]))
        warn, stop = 100 * self.info.warn_fraction, 100 * self.info.stop_fraction
        bar_w = max(8, min(40, width - 24))
        scale = 150.0  # the engine caps each component at 150: bars show 0-150, round 0 = 100
        for rnd, m, value, _ in measured:
            rstate = ((m.get("collapse") or {}).get("state")) or "ok"
            style = st["collapse"] if rstate == "collapse" else st["warn"] if rstate == "warn" else st["accent"]
            if value is not None and rstate == "ok":
                style = st["error"] if value < stop else st["warning"] if value < warn else st["accent"]
            filled, empty = bar((value or 0) / scale, bar_w)
            line = Text(f"r{rnd} ")
            line.append(filled, style)
            line.append(empty, st["muted"])
            line.append(f" {num(value)}", style)
            if rstate != "ok":
                line.append(f" {rstate}", style)
            parts.append(line)
        marks = [" "] * bar_w
        for frac in (self.info.stop_fraction, self.info.warn_fraction, 1.0):
            marks[min(bar_w - 1, int(100 * frac / scale * bar_w))] = "┴"
        parts.append(Text("   " + "".join(marks) + f" {stop:.0f}/{warn:.0f}/100", style=st["muted"]))
        # components: rows = component, columns = rounds (relative to r0, then the raw value)
        names: list[str] = []
        for *_, comps in measured:
            for name, *_ in comps:
                if name not in names:
                    names.append(name)
        show_raw = width >= 24 + 10 * len(measured)
        if names:
            parts.append(Text("components, % of r0" + (" (raw)" if show_raw else ""), style=st["bold"]))
            t = Table(box=box.SIMPLE_HEAD, padding=0, pad_edge=False, show_edge=False)
            t.add_column("component", no_wrap=True, overflow="ellipsis",
                         max_width=max(12, width - (10 if show_raw else 5) * len(measured) - 2))
            for rnd, *_ in measured:
                t.add_column(f"r{rnd}", justify="right", no_wrap=True)
            for name in names:
                in_gauge = any(ig for *_, comps in measured for n, _, _, ig, _ in comps if n == name)
                row: list = [Text(one_line(name.replace("_", " ")) + ("" if in_gauge else " ·"),
                                  style="" if in_gauge else st["muted"])]
                for *_, comps in measured:
                    entry = next((e for e in comps if e[0] == name), None)
                    rel, raw = (entry[1], entry[2]) if entry else (None, None)
                    cell = Text(num(rel, 0) if rel is not None else "–")
                    if rel is not None and in_gauge and rel < warn:
                        cell.stylize(st["warning"] if rel >= stop else st["error"])
                    if raw is not None and show_raw:
                        cell.append(f" {raw:.2f}", st["muted"])
                    row.append(cell)
                t.add_row(*row)
            parts.append(t)
        return Group(*parts)
