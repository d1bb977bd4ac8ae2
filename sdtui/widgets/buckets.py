"""Bucket split per round (unsolved/barely/often/always, solved/unsolvable) and the transition table.

The transition table (how problems moved between buckets from the previous round) is the seed's
central claim: barely-solved problems moving up is where self-distillation gains concentrate.
"""

from __future__ import annotations

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from sdtui.data import is_measured
from sdtui.fmt import BUCKET_SHORT, BUCKETS, theme_styles


class BucketPanel(Widget):
    DEFAULT_CSS = "BucketPanel { height: auto; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rounds: list[dict] = []
        self.split = "train"
        self.transition_round: int | None = None  # None: the latest round with transitions

    def set_rounds(self, rounds: list[dict]) -> None:
        self.rounds = rounds
        self.refresh(layout=True)

    def toggle_split(self) -> str:
        self.split = "heldout" if self.split == "train" else "train"
        self.refresh(layout=True)
        return self.split

    def step_round(self, delta: int) -> None:
        have = self._transition_rounds()
        if not have:
            return
        cur = self.transition_round if self.transition_round in have else have[-1]
        i = max(0, min(len(have) - 1, have.index(cur) + delta))
        self.transition_round = have[i]
        self.refresh(layout=True)

    def _transition_rounds(self) -> list[int]:
        return [r["round"] for r in self.rounds if ((r.get("metrics") or {}).get("transitions") or {}).get(self.split)]

    def render(self) -> Group | Text:
        st = theme_styles(self.app)
        measured = [r for r in self.rounds if is_measured(r)]
        if not measured:
            return Text("No round measured yet: bucket counts appear when round 0's metrics stage ends.",
                        style=st["muted"])
        name = "train" if self.split == "train" else "held-out"
        narrow = (self.size.width or 80) < 52
        label = (lambda b: BUCKET_SHORT[b]) if narrow else (lambda b: b)
        split = Table(box=box.SIMPLE_HEAD, padding=0, pad_edge=False, expand=False, show_edge=False)
        split.add_column("" if narrow else "round")
        for b in BUCKETS:
            split.add_column(Text(label(b), style=st[b]), justify="right")
        split.add_column("solved", justify="right")
        split.add_column(Text("never" if narrow else "unsolvable", style=st["error"]), justify="right")
        for r in measured:
            m = r["metrics"]
            s = m.get(self.split) or {}
            b = s.get("buckets") or {}
            total = s.get("n_problems")
            row = [f"r{r['round']}"]
            row += [Text(str(b.get(k, 0)), style=st[k] if b.get(k) else st["muted"]) for k in BUCKETS]
            solved = (m.get("solved") or {}).get(self.split)
            unsolvable = (m.get("unsolvable") or {}).get(self.split)
            row.append(f"{solved}/{total}" if solved is not None and total else str(solved if solved is not None else "–"))
            row.append(Text("–" if unsolvable is None else str(unsolvable), style=st["error"] if unsolvable else ""))
            split.add_row(*row)
        parts: list = [Text(f"Buckets per round · {name}  (h: switch)", style=st["bold"]), split]
        left = [(r["round"], (r["metrics"].get("left_unsolved") or {})) for r in measured]
        left = [(rnd, d) for rnd, d in left if (d.get("of") or {}).get(self.split)]
        if left and left[-1][0] > 0:
            rnd, d = left[-1]
            parts.append(Text(f"unsolved at r0, solved at r{rnd}: {d.get(self.split, 0)} of {d['of'][self.split]}",
                              style=st["success"] if d.get(self.split) else st["muted"]))
        hints = [(r["round"], r["metrics"]["hints"]) for r in measured if r["metrics"].get("hints")]
        if hints and self.split == "train":
            line = Text("hinted re-samples passed: ", style=st["accent"])
            line.append("  ".join(f"r{rnd} {h['passed']}/{h['samples']} ({h['problems_passed']} of {h['problems']} problems)"
                                  for rnd, h in hints), style=st["muted"])
            parts.append(line)
        have = self._transition_rounds()
        if have:
            rnd = self.transition_round if self.transition_round in have else have[-1]
            m = next(r["metrics"] for r in self.rounds if r["round"] == rnd)
            tr = m["transitions"][self.split]
            parts.append(Text(f"Transitions r{rnd - 1} → r{rnd} · {name}  ([ ] round)", style=st["bold"]))
            t = Table(box=box.SIMPLE_HEAD, padding=0, pad_edge=False, show_edge=False)
            t.add_column("from \\ to")
            for b in BUCKETS:
                t.add_column(Text(label(b), style=st[b]), justify="right")
            order = {b: i for i, b in enumerate(BUCKETS)}
            for frm in BUCKETS:
                row_data = tr.get(frm) or {}
                cells: list = [Text(label(frm), style=st[frm])]
                for to in BUCKETS:
                    v = int(row_data.get(to, 0) or 0)
                    style = st["muted"]
                    if v:
                        style = st["success"] if order[to] > order[frm] else st["error"] if order[to] < order[frm] else st["bold"]
                    cells.append(Text(str(v) if v else "·", style=style))
                t.add_row(*cells)
            parts.append(t)
        elif len(measured) == 1:
            parts.append(Text("Transitions appear after round 1.", style=st["muted"]))
        return Group(*parts)
