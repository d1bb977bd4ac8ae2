"""Which of a round's samples become its training set (DESIGN section 2, `filter`).

Policy (FilterConfig): keep passing samples only (or every sample when `verified` is false, the
SSD-style baseline), drop repeats of a program already kept for the problem (`dedupe`, by the
normalized-program hash of engine.diversity), and keep at most `max_per_problem` per problem.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping, Sequence

from engine.diversity import norm_hash


def _hash(sample: Mapping) -> str:
    # The runner stores norm_hash with each sample; compute it when a caller has not.
    return sample.get("norm_hash") or norm_hash(sample["completion"])


def select_training(
    samples: Sequence[Mapping],
    verified: bool,
    dedupe: bool,
    max_per_problem: int,
    seed: int,
) -> list[int]:
    """The ids of the samples to train on, sorted.

    Each sample has at least id, task_id, idx, status ("passed" | "failed" | "timed out" |
    "error"), completion and norm_hash. Per problem: candidates are the passing samples (all
    samples when `verified` is false); with `dedupe`, of samples with equal norm_hash only the
    lowest idx stays; over the cap, distinct programs go first (each represented by its lowest
    idx), then repeats, each group in an order shuffled by (seed, task_id). The result depends only
    on the samples' contents and the arguments, not on their order.
    """
    if max_per_problem < 1:
        raise ValueError(f"max_per_problem must be >= 1, got {max_per_problem}")
    by_task: dict[str, list[Mapping]] = defaultdict(list)
    for s in samples:
        if not verified or s["status"] == "passed":
            by_task[s["task_id"]].append(s)

    chosen: list[int] = []
    for task, group in by_task.items():
        group.sort(key=lambda s: (s["idx"], s["id"]))
        firsts: list[Mapping] = []
        repeats: list[Mapping] = []
        seen: set[str] = set()
        for s in group:
            h = _hash(s)
            (repeats if h in seen else firsts).append(s)
            seen.add(h)
        if dedupe:
            repeats = []
        if len(firsts) + len(repeats) > max_per_problem:
            # str seeds are hashed with SHA-512 by random.Random: stable across runs and machines.
            rng = random.Random(f"{seed}:{task}")
            rng.shuffle(firsts)
            rng.shuffle(repeats)
        chosen.extend(s["id"] for s in (firsts + repeats)[:max_per_problem])
    return sorted(chosen)
