"""Where a round's samples go (issue 8): the train problems' sample allocation, and the hinted
re-samples of the problems no sample solved.

Pure functions over plain data; the runner stores what they return (`allocations` rows), so a
resumed round samples exactly what it planned, and the TUI shows each problem's share and why.

Budget: every round spends `total` train samples (budget.train_samples, default sampling.n per
train problem). With hints on, `hint.samples` of them are held back for the hint stage and spread
over the round's unsolved train problems; the rest are the round's ordinary samples, either the
same for every problem or (adaptive) weighted by what the previous round showed:

    always solved              0.25   (still sampled: training data, and a regression shows)
    often solved (30-99%)      1
    barely solved (<= 30%)     2      (where self-distillation gains most, per the seed papers)
    unsolved                   0.5 + 1.5 x best partial credit (share of the tests' asserts passed)

Samples are handed out one at a time to the problem with the highest weight / (samples so far + 1)
(D'Hondt's rule), within [min_per_problem, max_per_problem]: proportional, integral, and with no
rounding left over.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.metrics import bucket

WEIGHTS = {"always": 0.25, "often": 1.0, "barely": 2.0}
UNSOLVED_BASE, UNSOLVED_CREDIT = 0.5, 1.5


@dataclass(frozen=True)
class Seen:
    """What the previous round showed of one train problem."""

    n: int
    c: int
    credit: float = 0.0  # the best partial credit among its samples, 0-1


def weight(seen: Seen | None) -> tuple[float, str]:
    """A problem's adaptive weight and the reason shown in the TUI."""
    if seen is None or seen.n == 0:
        return 1.0, "no earlier round"
    b = bucket(seen.n, seen.c)
    if b == "unsolved":
        # rounded: the stored credit (4 decimals) and a fresh one must give the same plan
        return round(UNSOLVED_BASE + UNSOLVED_CREDIT * round(seen.credit, 4), 6), f"unsolved, best {seen.credit:.0%} of asserts"
    return WEIGHTS[b], f"{b} solved ({seen.c}/{seen.n})"


def even_split(task_ids: Sequence[str], total: int) -> dict[str, tuple[int, str]]:
    """`total` samples spread evenly, the remainder to the first problems."""
    if not task_ids:
        return {}
    each, extra = divmod(total, len(task_ids))
    return {t: (each + (i < extra), "even split") for i, t in enumerate(task_ids)}


def allocate(task_ids: Sequence[str], total: int, previous: Mapping[str, Seen] | None, adaptive: bool,
             min_n: int, max_n: int) -> dict[str, tuple[int, str]]:
    """task_id -> (samples this round, reason), summing to `total` (unless the bounds forbid it).

    Not adaptive, or no previous round (round 0): an even split. Adaptive: D'Hondt over `weight`,
    each problem between `min_n` and `max_n`.
    """
    if not adaptive or not previous:
        return even_split(task_ids, total)
    if min_n * len(task_ids) > total:
        min_n = total // len(task_ids)  # too small a budget for the floor: the floor gives way
    weights = {t: weight(previous.get(t)) for t in task_ids}
    alloc = {t: min_n for t in task_ids}
    left = total - min_n * len(task_ids)
    # max-heap on weight / (given above the floor + 1); ties go to the earlier problem
    heap = [(-w, i, t) for i, (t, (w, _)) in enumerate(weights.items()) if max_n > min_n and w > 0]
    heapq.heapify(heap)
    while left > 0 and heap:
        _, i, t = heapq.heappop(heap)
        alloc[t] += 1
        left -= 1
        if alloc[t] < max_n:
            heapq.heappush(heap, (-weights[t][0] / (alloc[t] - min_n + 1), i, t))
    return {t: (alloc[t], f"adaptive: {weights[t][1]}") for t in task_ids}


def split_hints(unsolved: Sequence[tuple[str, float]], samples: int) -> dict[str, tuple[int, str]]:
    """Hinted samples for the round's unsolved train problems, (task_id, best credit) each: an even
    split, the remainder to the problems closest to passing."""
    order = sorted(unsolved, key=lambda tc: -tc[1])  # stable: ties keep the problems' order
    split = even_split([t for t, _ in order], samples)
    return {t: (n, "unsolved this round") for t, (n, _) in split.items() if n > 0}


def credit(sample: Mapping) -> float:
    """A sample's partial credit: the share of the tests' asserts it passed (0 when not counted)."""
    total = sample.get("asserts_total") or 0
    return (sample.get("asserts_passed") or 0) / total if total else 0.0


def closest_attempt(samples: Sequence[Mapping]) -> Mapping | None:
    """The failed sample nearest to passing: most asserts passed, then failed before timed out or
    error (it ran to a verdict), then the lowest index (deterministic)."""
    rank = {"failed": 0, "timed out": 1, "error": 2}
    failed = [s for s in samples if s["status"] in rank]
    if not failed:
        return None
    return min(failed, key=lambda s: (-credit(s), rank[s["status"]], s["idx"]))


def hint_text(attempt: Mapping, show_attempt: bool, code: str = "") -> str:
    """The hint a re-sample's prompt carries: the failing test (and error) of the model's own
    closest attempt, and optionally that attempt's code."""
    detail = (attempt.get("detail") or attempt["status"]).strip()
    lines = ["A previous attempt at this function was wrong.", f"It failed with: {detail}"]
    if attempt.get("asserts_total"):
        lines.append(f"It passed {attempt.get('asserts_passed') or 0} of the {attempt['asserts_total']} test asserts.")
    if show_attempt and code.strip():
        lines += ["The previous attempt:", "```python", code.strip("\n"), "```"]
    lines.append("Write a correct version.")
    return "\n".join(lines)


_SHOWN = re.compile(r"The previous attempt:\n```python\n(.*?)\n```", re.S)


def shown_attempt(hint: str) -> str | None:
    """The attempt's code a `hint_text` shows (None when it shows none): to measure copying."""
    m = _SHOWN.search(hint or "")
    return m.group(1) if m else None
