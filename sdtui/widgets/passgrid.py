"""The per-problem pass-count grid: problems x rounds, cell c/n coloured by bucket (n is the
problem's sample budget that round; "+2h": two hinted re-samples passed, not counted in c/n).

Sortable (gain, task id, pass count), filterable (all, barely at round 0, unsolvable, train, held-out);
Enter posts `PassGrid.OpenProblem`. Rows are rebuilt only when the data, sort or filter change, and
the cursor stays on the same problem.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from sdtui.data import GRID_FILTERS, GRID_SORTS, GridRow, filter_grid, sort_grid
from sdtui.fmt import one_line, theme_styles


class PassGrid(DataTable):
    BINDINGS = [
        Binding("s", "cycle_sort", "Sort", show=False),
        Binding("S", "reverse_sort", "Reverse", show=False),
        Binding("f", "cycle_filter", "Filter", show=False),
        Binding("enter", "select_cursor", "Open the problem's samples", show=False),
    ]

    @dataclass
    class OpenProblem(Message):
        task_id: str
        round: int | None

    @dataclass
    class ViewChanged(Message):
        """Sort/filter changed (the dashboard shows them in the pane title)."""

        description: str

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.rows_data: list[GridRow] = []
        self.sort_key = "gain"
        self.reverse = False
        self.filter = "all"
        self.n_rounds = 0
        self.cell_w = 5
        self.task_w = 0  # the task column's width (from the data; 0 = no columns yet)
        self.shown: list[GridRow] = []

    @property
    def description(self) -> str:
        arrow = "↑" if self.reverse else "↓"
        shown = f"{len(self.shown)}/{len(self.rows_data)}" if self.filter != "all" else f"{len(self.rows_data)}"
        return f"{shown} problems · sort {self.sort_key} {arrow} · filter {self.filter}"

    def set_rows(self, rows: list[GridRow]) -> None:
        self.rows_data = rows
        self.rebuild()

    def rebuild(self, force: bool = False) -> None:
        keep = self.current_task()
        n_rounds = max((len(r.cells) for r in self.rows_data), default=0)
        shown = sort_grid(filter_grid(self.rows_data, self.filter), self.sort_key, self.reverse)
        st = theme_styles(self.app)
        same_rows = [r.task_id for r in shown] == [r.task_id for r in self.shown]
        max_n = max((c[0] for r in self.rows_data for c in r.cells if c), default=8)
        max_n = max([max_n] + [r.live[1] for r in self.rows_data if r.live])
        max_h = max((c[3] for r in self.rows_data for c in r.cells if c), default=0)
        cell_w = max(5, 2 * len(str(max_n)) + 2 + (len(str(max_h)) + 2 if max_h else 0))
        # The task column gets its width from the data, not from DataTable's auto width, which is
        # measured lazily and was seen (1 run in ~10 on a loaded CI machine) to stay at the header's
        # 4 characters when rows were re-added before the table had measured them.
        task_w = max([4] + [len(one_line(r.task_id, 28)) + (2 if r.unsolvable else 0) for r in self.rows_data])
        if not force and same_rows and n_rounds == self.n_rounds and cell_w == self.cell_w and self.columns \
                and task_w == self.task_w:
            # Same problems in the same order (a live update): change only the cells that differ.
            old = {r.task_id: r for r in self.shown}
            self.shown = shown
            for row in shown:
                if old.get(row.task_id) != row:
                    for col, value in zip(self.columns, self._cells(row, st)):
                        self.update_cell(row.task_id, col, value, update_width=True)
            return
        if n_rounds != self.n_rounds or cell_w != self.cell_w or task_w != self.task_w or not self.columns:
            self.clear(columns=True)
            self.n_rounds, self.cell_w, self.task_w = n_rounds, cell_w, task_w
            self.add_column("task", key="task", width=task_w)
            self.add_column("", key="split", width=2)
            for r in range(n_rounds):
                self.add_column(Text(f"r{r}", justify="right"), key=f"r{r}", width=cell_w)
            self.add_column(Text("gain", justify="right"), key="gain", width=5)
        else:
            self.clear()
        self.shown = shown
        for row in shown:
            self.add_row(*self._cells(row, st), key=row.task_id)
        if keep is not None and any(r.task_id == keep for r in shown):
            self.move_cursor(row=self.get_row_index(keep), animate=False, scroll=True)
        self.post_message(self.ViewChanged(self.description))

    def _cells(self, row: GridRow, st: dict) -> list:
        task = Text(one_line(row.task_id, 28))
        if row.unsolvable:
            task.append(" ✗", st["error"])
        cells: list = [task, Text("tr" if row.split == "train" else "ho", style=st["muted"])]
        for i, cell in enumerate(row.cells):
            if cell is not None:
                n, c, bucket, hinted = cell
                text = Text(f"{c}/{n}", style=st.get(bucket, st["muted"]), justify="right")
                if hinted:  # hinted re-samples passed (they do not count in c/n)
                    text.append(f"+{hinted}h", st["accent"])
                cells.append(text)
            elif row.live and i == row.live[0]:
                _, n, c = row.live
                cells.append(Text(f"{c}/{n}…", style=st["muted"], justify="right"))
            else:
                cells.append(Text("·", style=st["muted"], justify="right"))
        if row.gain is None:
            cells.append(Text("", justify="right"))
        else:
            g = round(100 * row.gain)
            style = st["success"] if g > 0 else st["error"] if g < 0 else st["muted"]
            cells.append(Text(f"{g:+d}", style=style, justify="right"))
        return cells

    def current_task(self) -> str | None:
        if not self.shown or self.cursor_row < 0 or self.cursor_row >= len(self.shown) or self.row_count == 0:
            return None
        try:
            key = self.coordinate_to_cell_key((self.cursor_row, 0)).row_key
        except Exception:
            return None
        return key.value

    def action_cycle_sort(self) -> None:
        self.sort_key = GRID_SORTS[(GRID_SORTS.index(self.sort_key) + 1) % len(GRID_SORTS)]
        self.reverse = False
        self.rebuild()

    def action_reverse_sort(self) -> None:
        self.reverse = not self.reverse
        self.rebuild()

    def action_cycle_filter(self) -> None:
        self.filter = GRID_FILTERS[(GRID_FILTERS.index(self.filter) + 1) % len(GRID_FILTERS)]
        self.rebuild()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # Enter and mouse clicks on a row; the event's row key is the task id.
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.OpenProblem(event.row_key.value, None))
