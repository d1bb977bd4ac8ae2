"""pass@1 / pass@k per round, train and held-out: a sparkline per series (fixed 0-100% scale) and values."""

from __future__ import annotations

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from sdtui.data import ConfigInfo, is_measured
from sdtui.fmt import bar, pct, spark, theme_styles


class PassKChart(Widget):
    DEFAULT_CSS = "PassKChart { height: auto; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rounds: list[dict] = []
        self.info = ConfigInfo()

    def set_rounds(self, rounds: list[dict], info: ConfigInfo) -> None:
        self.rounds, self.info = rounds, info
        self.refresh(layout=True)

    def series(self) -> list[tuple[str, str, list[float | None]]]:
        measured = [r for r in self.rounds if is_measured(r)]
        keys: list[str] = []
        for r in measured:
            for split in ("train", "heldout"):
                for k in (r["metrics"].get(split) or {}):
                    if k.startswith("pass@") and k not in keys:
                        keys.append(k)
        keys.sort(key=lambda k: int(k[5:]) if k[5:].isdigit() else 0)
        out = []
        for split in ("train", "heldout"):
            for k in keys:
                vals = [((r["metrics"].get(split) or {}).get(k)) for r in measured]
                if any(v is not None for v in vals):
                    out.append((split, k, vals))
        return out

    def render(self) -> Group | Text:
        st = theme_styles(self.app)
        measured = [r for r in self.rounds if is_measured(r)]
        series = self.series()
        if not series:
            return Text("No pass@k yet: it appears when round 0's metrics stage ends.", style=st["muted"])
        width = self.size.width or 60
        t = Table(box=box.SIMPLE_HEAD, padding=0, pad_edge=False, show_edge=False)
        t.add_column("series", no_wrap=True)
        t.add_column("trend", no_wrap=True)
        for r in measured:
            t.add_column(f"r{r['round']}", justify="right", no_wrap=True)
        t.add_column("Δ", justify="right", no_wrap=True)
        for split, k, vals in series:
            colour = st["accent"] if split == "train" else st["primary"]
            name = ("train" if split == "train" else "held" if width < 60 else "held-out")
            row: list = [Text(f"{name} {k}", style=colour),
                         Text(spark(vals), style=colour)]
            row += ["–" if v is None else f"{100 * v:.1f}" for v in vals]
            known = [v for v in vals if v is not None]
            if len(known) >= 2:
                d = 100 * (known[-1] - known[0])
                row.append(Text(f"{d:+.1f}", style=st["success"] if d > 0 else st["error"] if d < 0 else st["muted"]))
            else:
                row.append("")
            t.add_row(*row)
        parts: list = [Text("pass@k per round, % (trend: 0-100 scale)", style=st["bold"]), t]
        # bars for the latest round, so the eye can compare train and held-out at a glance
        bar_w = max(8, min(40, width - 26))
        last = measured[-1]
        parts.append(Text(f"round {last['round']}", style=st["bold"]))
        for split, k, vals in series:
            v = vals[-1]
            filled, empty = bar(v or 0.0, bar_w)
            colour = st["accent"] if split == "train" else st["primary"]
            line = Text(f"{'train' if split == 'train' else 'held-out':8} {k:7} ")
            line.append(filled, colour)
            line.append(empty, st["muted"])
            line.append(f" {pct(v, 1)}")
            parts.append(line)
        return Group(*parts)
