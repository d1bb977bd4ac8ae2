"""Training-set selection: verified or not, dedupe, cap, determinism."""

from __future__ import annotations

import random

import pytest

from engine.diversity import norm_hash
from engine.filter import select_training


def _s(id, task, idx, status, h, completion=""):
    return {"id": id, "task_id": task, "idx": idx, "status": status,
            "completion": completion or f"# {h}", "norm_hash": h}


SAMPLES = [
    _s(1, "A", 0, "passed", "h1"),
    _s(2, "A", 1, "passed", "h1"),  # the same program as id 1
    _s(3, "A", 2, "failed", "h2"),
    _s(4, "A", 3, "passed", "h3"),
    _s(5, "A", 4, "timed out", "h4"),
    _s(6, "B", 0, "error", "h5"),
    _s(7, "B", 1, "passed", "h6"),
    _s(8, "C", 0, "failed", "h7"),  # C has no passing sample
]


def test_verified_keeps_passing_only_and_dedupes():
    assert select_training(SAMPLES, verified=True, dedupe=True, max_per_problem=4, seed=0) == [1, 4, 7]


def test_verified_without_dedupe_keeps_repeats():
    assert select_training(SAMPLES, verified=True, dedupe=False, max_per_problem=4, seed=0) == [1, 2, 4, 7]


def test_unverified_keeps_every_status():
    kept = select_training(SAMPLES, verified=False, dedupe=True, max_per_problem=10, seed=0)
    assert kept == [1, 3, 4, 5, 6, 7, 8]
    assert select_training(SAMPLES, verified=False, dedupe=False, max_per_problem=10, seed=0) == list(range(1, 9))


def test_dedupe_keeps_the_lowest_idx_whatever_the_id_or_order():
    samples = [_s(10, "A", 5, "passed", "h"), _s(11, "A", 2, "passed", "h"), _s(12, "A", 9, "passed", "h")]
    for order in (samples, samples[::-1]):
        assert select_training(order, verified=True, dedupe=True, max_per_problem=4, seed=0) == [11]


def test_cap_prefers_distinct_programs_over_repeats():
    samples = [_s(i, "A", i, "passed", "same") for i in range(5)] + [_s(9, "A", 7, "passed", "other")]
    for seed in range(10):
        # One of each program, the repeated one by its lowest idx; the seed has nothing to choose.
        assert select_training(samples, verified=True, dedupe=False, max_per_problem=2, seed=seed) == [0, 9]


def test_cap_is_per_problem_deterministic_and_seeded():
    samples = [_s(base + i, t, i, "passed", f"{t}-{i}") for t, base in (("A", 100), ("B", 200)) for i in range(10)]
    picks = set()
    for seed in range(8):
        chosen = select_training(samples, verified=True, dedupe=True, max_per_problem=3, seed=seed)
        assert len(chosen) == 6
        assert sum(1 for i in chosen if i < 200) == 3
        shuffled = samples[:]
        random.Random(seed).shuffle(shuffled)
        assert select_training(shuffled, verified=True, dedupe=True, max_per_problem=3, seed=seed) == chosen
        picks.add(tuple(chosen))
    assert len(picks) > 1  # the seed does choose


def test_missing_norm_hash_is_computed_from_the_completion():
    a = "def f(x):\n    return x + 1\n"
    b = "def f(y):\n    # renamed\n    return y + 1\n"
    samples = [
        {"id": 1, "task_id": "A", "idx": 0, "status": "passed", "completion": a, "norm_hash": None},
        {"id": 2, "task_id": "A", "idx": 1, "status": "passed", "completion": b, "norm_hash": ""},
        {"id": 3, "task_id": "A", "idx": 2, "status": "passed", "completion": b, "norm_hash": norm_hash("x = 1")},
    ]
    assert select_training(samples, verified=True, dedupe=True, max_per_problem=4, seed=0) == [1, 3]


def test_bad_cap_and_empty_input():
    assert select_training([], verified=True, dedupe=True, max_per_problem=1, seed=0) == []
    with pytest.raises(ValueError):
        select_training(SAMPLES, verified=True, dedupe=True, max_per_problem=0, seed=0)
