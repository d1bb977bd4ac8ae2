"""Stage progress: status, round, the stages of the current round, a bar with counts, rates and ETA."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.widget import Widget

from sdtui.data import ConfigInfo
from sdtui.fmt import STATUS_STYLE, bar, duration, num, one_line, safe, theme_styles

STAGES = ("filter", "train", "sample", "verify", "hint", "metrics")  # the engine's order within a round


class StageProgress(Widget):
    """Renders from the last campaign row it was given; re-rendered on theme change like any widget."""

    DEFAULT_CSS = "StageProgress { height: auto; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.campaign: dict | None = None
        self.status = ""
        self.info = ConfigInfo()
        self.rounds: list[dict] = []
        self.collapse: dict = {}

    def set_data(self, campaign: dict, status: str, info: ConfigInfo, rounds: list[dict] | None) -> None:
        self.campaign, self.status, self.info = campaign, status, info
        if rounds is not None:
            self.rounds = rounds
            self.collapse = {}
            for r in rounds:
                if (r.get("metrics") or {}).get("collapse"):
                    self.collapse = r["metrics"]["collapse"]
        lines = len(self._lines())
        self.refresh(layout=lines != getattr(self, "_nlines", None))  # a new layout only when the height changes
        self._nlines = lines

    def render(self) -> Group | Text:
        lines = self._lines()
        return Group(*lines) if lines else Text("loading…")

    def _lines(self) -> list[Text]:
        c = self.campaign
        if c is None:
            return []
        st = theme_styles(self.app)
        width = max(20, self.size.width or 80)
        p = c.get("progress") or {}
        rnd = p.get("round", c.get("round"))
        # line 1: status, round, stage (+ collapse state, visible whatever pane is shown)
        head = Text()
        head.append(f"● {self.status}", st[STATUS_STYLE.get(self.status, "muted")] + st["bold"])
        if rnd is not None:
            head.append(f"  round {rnd}/{self.info.rounds}")
        stage = p.get("stage") or c.get("stage")
        if stage and self.status not in ("finished",):
            head.append("  stage ")
            head.append(safe(stage), st["bold"])
        state = self.collapse.get("state")
        if state in ("warn", "collapse"):
            head.append("  ⚠ collapse" if state == "collapse" else "  ⚠ diversity", st[state])
        lines: list[Text] = [head]
        # line 2: the stages of the current round: done (with seconds), current, to do
        cur = next((r for r in self.rounds if r["round"] == rnd), None)
        timings = (cur or {}).get("timings") or {}
        stages = Text()
        for name in list(STAGES) + [s for s in timings if s not in STAGES]:
            if (rnd == 0 and name in ("filter", "train")) or (name == "hint" and not self.info.hints):
                continue
            if stages:
                stages.append(" › ", st["muted"])
            if name == stage and self.status in ("running", "starting", "paused"):
                stages.append(f"▶ {name}", st["accent"] + st["bold"])
            elif name in timings:
                stages.append(f"✓ {name} {duration(timings[name])}", st["success"])
            else:
                stages.append(name, st["muted"])
        lines.append(stages)
        # line 3: the bar and the numbers
        done, total = p.get("done"), p.get("total")
        if self.status in ("running", "starting", "paused", "engine lost") and total:
            frac = (done or 0) / total if total else 0.0
            label = f" {done or 0}/{total} {p.get('unit', '')}".rstrip()
            rates = []
            if p.get("samples_per_s") is not None:
                rates.append(f"{num(p['samples_per_s'])} samples/s")
            if p.get("tokens_per_s"):
                rates.append(f"{num(p['tokens_per_s'], 0)} tok/s")
            if p.get("verified"):
                rates.append(f"passed {p.get('passed', 0)}/{p['verified']}")
            if p.get("loss") is not None:
                rates.append(f"loss {num(p['loss'], 3)}")
            eta = f"  ETA {duration(p.get('eta_s'))}" if p.get("eta_s") is not None else ""
            bar_w = max(10, min(40, width - len(label) - len(eta) - 2))
            filled, empty = bar(frac, bar_w)
            line = Text()
            line.append(filled, st["accent"])
            line.append(empty, st["muted"])
            line.append(label)
            line.append(eta, st["bold"])
            lines.append(line)
            if rates:
                lines.append(Text("  ".join(rates), style=st["muted"]))
            elif self.status == "running" and not done and p.get("unit") == "samples":
                # the first unit can take minutes on a CPU: say that something is happening
                lines.append(Text("sampling the first batch; rates and ETA once it is in", style=st["muted"]))
        elif self.status == "finished":
            lines.append(Text(f"finished {len(self.rounds) - 1 if self.rounds else 0} training rounds; model "
                              f"{one_line(self.info.model, 40)}", style=st["muted"]))
        # hints and errors
        if self.status == "engine lost":
            lines.append(Text("The engine stopped sending heartbeats. Press r to resume it.", style=st["error"]))
        elif self.status == "paused":
            lines.append(Text("Paused. Press r to resume.", style=st["warning"]))
        if c.get("error"):
            lines.append(Text(one_line(c["error"], max(10, width - 2)), style=st["error"]))
        for line in lines:
            line.no_wrap, line.overflow = True, "ellipsis"
        return lines
