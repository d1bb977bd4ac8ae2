"""Numbers the product shows (DESIGN section 6): pass@k, pass counts, buckets, solved/unsolvable.

Pure functions over plain data. A round's per-problem results are `counts`: task_id -> (n, c),
n samples of which c passed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

BUCKETS = ("unsolved", "barely", "often", "always")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of Chen et al. 2021 for one problem: 1 - C(n-c, k) / C(n, k), as a stable product.

    The probability that at least one of k samples drawn without replacement from the n passes.
    k > n is read as k = n (all samples drawn): the estimator is undefined beyond n.
    """
    if n < 1 or not 0 <= c <= n or k < 1:
        raise ValueError(f"pass_at_k needs n >= 1, 0 <= c <= n, k >= 1; got n={n}, c={c}, k={k}")
    k = min(k, n)
    if c == 0:
        return 0.0
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(counts: Mapping[str, tuple[int, int]], k: int) -> float:
    """pass@k averaged over problems (each problem weighs the same). k > n for a problem uses n
    for that problem. No problems: 0.0 (`round_summary` reports None instead)."""
    if not counts:
        return 0.0
    return float(np.mean([pass_at_k(n, c, k) for n, c in counts.values()]))


def bucket(n: int, c: int) -> str:
    """The problem's bucket by share passing c / n: unsolved 0; barely (0, 0.3]; often (0.3, 1); always 1."""
    if n < 1 or not 0 <= c <= n:
        raise ValueError(f"bucket needs n >= 1 and 0 <= c <= n; got n={n}, c={c}")
    if c == 0:
        return "unsolved"
    if c == n:
        return "always"
    # Integer comparison: c / n <= 0.3 in floating point would misplace some boundaries.
    return "barely" if 10 * c <= 3 * n else "often"


def buckets(counts: Mapping[str, tuple[int, int]]) -> dict[str, str]:
    """task_id -> bucket, for `transitions`."""
    return {task: bucket(n, c) for task, (n, c) in counts.items()}


def transitions(prev: Mapping[str, str], cur: Mapping[str, str]) -> dict[str, dict[str, int]]:
    """How many problems moved from each bucket (of the earlier round) to each bucket (of this one):
    result[from][to] = count, over the problems present in both rounds; all four buckets are
    always present on both levels, in BUCKETS order."""
    table = {a: dict.fromkeys(BUCKETS, 0) for a in BUCKETS}
    for task, before in prev.items():
        after = cur.get(task)
        if after is not None:
            table[before][after] += 1
    return table


def solved_split(history: Sequence[Mapping[str, tuple[int, int]]]) -> tuple[set[str], set[str]]:
    """(solved, unsolvable) over the rounds so far: solved = passed at least once in any round;
    unsolvable = seen in some round and never passed (self-distillation cannot learn from it)."""
    seen: set[str] = set()
    solved: set[str] = set()
    for counts in history:
        for task, (_n, c) in counts.items():
            seen.add(task)
            if c > 0:
                solved.add(task)
    return solved, seen - solved


def round_summary(counts: Mapping[str, tuple[int, int]], ks: Sequence[int]) -> dict[str, Any]:
    """A round's pass metrics as JSON-serializable data (stored as the round's metrics):
    {"n_problems", "n_samples", "n_passed", "pass@K" for each K in ks (None without problems),
     "ci": {"pass@K": [lo, hi]} (95% bootstrap over problems, see bootstrap_ci),
     "buckets": {bucket: number of problems}, "pass_counts": {task_id: [n, c]}}."""
    out: dict[str, Any] = {
        "n_problems": len(counts),
        "n_samples": sum(n for n, _ in counts.values()),
        "n_passed": sum(c for _, c in counts.values()),
    }
    out["ci"] = {}
    for k in ks:
        out[f"pass@{k}"] = mean_pass_at_k(counts, k) if counts else None
        out["ci"][f"pass@{k}"] = list(bootstrap_ci(counts, k)) if counts else None
    tally = dict.fromkeys(BUCKETS, 0)
    for n, c in counts.values():
        tally[bucket(n, c)] += 1
    out["buckets"] = tally
    out["pass_counts"] = {task: [n, c] for task, (n, c) in counts.items()}
    return out


def bootstrap_ci(
    counts: Mapping[str, tuple[int, int]],
    k: int,
    iters: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """A (1 - alpha) percentile-bootstrap interval for mean pass@k, resampling problems with
    replacement. It covers the choice of problems, not the sampling noise within a problem
    (which the unbiased estimator already averages). No problems: (0.0, 0.0)."""
    if not counts:
        return 0.0, 0.0
    per = np.array([pass_at_k(n, c, k) for n, c in counts.values()])
    rng = np.random.default_rng(seed)
    means = per[rng.integers(0, len(per), size=(iters, len(per)))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def paired_change_ci(
    before: Mapping[str, tuple[int, int]],
    after: Mapping[str, tuple[int, int]],
    k: int,
    iters: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float] | None:
    """The change in mean pass@k from `before` to `after` over the problems both measured, with a
    (1 - alpha) percentile-bootstrap interval that resamples problems *paired*: each draw takes a
    problem's before and after together. Rounds of one campaign share their problems, and a
    problem's difficulty moves both, so the paired interval is much narrower than comparing two
    `bootstrap_ci`s. Returns (change, lo, hi), or None without common problems."""
    common = sorted(set(before) & set(after))
    if not common:
        return None
    diff = np.array([pass_at_k(*after[t], k) - pass_at_k(*before[t], k) for t in common])
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(iters, len(diff)))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(diff.mean()), float(lo), float(hi)
