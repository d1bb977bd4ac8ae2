"""pass@k, buckets, transitions, solved split, round summary, bootstrap: hand-computed values."""

from __future__ import annotations

import json
from math import comb

import pytest

from engine.metrics import (
    BUCKETS,
    bootstrap_ci,
    bucket,
    buckets,
    mean_pass_at_k,
    pass_at_k,
    round_summary,
    solved_split,
    transitions,
)


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (5, 1, 1, 0.2),  # pass@1 = c / n
        (8, 3, 1, 3 / 8),
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (8, 1, 8, 1.0),  # drawing all 8 finds the one pass
        (8, 0, 8, 0.0),
        (8, 8, 1, 1.0),
        (8, 4, 5, 1.0),  # n - c < k: every draw of 5 contains a pass
        (1, 1, 1, 1.0),
        (1, 0, 1, 0.0),
    ],
)
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_the_combinatorial_formula():
    for n in range(1, 16):
        for c in range(n + 1):
            for k in range(1, n + 1):
                exact = 1 - comb(n - c, k) / comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)


def test_pass_at_k_with_k_above_n_uses_n():
    assert pass_at_k(4, 1, 10) == 1.0
    assert pass_at_k(4, 0, 10) == 0.0  # not 1.0: no sample passed
    assert pass_at_k(4, 2, 100) == pass_at_k(4, 2, 4)


@pytest.mark.parametrize("n, c, k", [(0, 0, 1), (4, 5, 1), (4, -1, 1), (4, 1, 0)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_mean_pass_at_k_averages_over_problems():
    counts = {"a": (4, 0), "b": (4, 1), "c": (4, 4)}
    assert mean_pass_at_k(counts, 1) == pytest.approx((0 + 0.25 + 1) / 3)
    assert mean_pass_at_k(counts, 4) == pytest.approx((0 + 1 + 1) / 3)
    assert mean_pass_at_k(counts, 2) == pytest.approx((0 + 0.5 + 1) / 3)  # 1 - C(3,2)/C(4,2) = 0.5
    assert mean_pass_at_k({"a": (2, 1), "b": (10, 1)}, 5) == pytest.approx((1.0 + 0.5) / 2)  # k > n for a
    assert mean_pass_at_k({}, 1) == 0.0


@pytest.mark.parametrize(
    "n, c, expected",
    [
        (8, 0, "unsolved"),
        (10, 1, "barely"),
        (10, 3, "barely"),  # exactly 0.3 is barely
        (20, 6, "barely"),  # 0.3 again, where a float division could misjudge it
        (10, 4, "often"),
        (8, 3, "often"),  # 0.375
        (8, 2, "barely"),  # 0.25
        (8, 7, "often"),
        (8, 8, "always"),
        (1, 1, "always"),
        (1, 0, "unsolved"),
        (100, 30, "barely"),
        (100, 31, "often"),
        (100, 99, "often"),
    ],
)
def test_bucket_boundaries(n, c, expected):
    assert bucket(n, c) == expected


def test_transitions_count_only_tasks_in_both_rounds():
    prev = {"a": "barely", "b": "barely", "c": "unsolved", "d": "often", "gone": "always"}
    cur = {"a": "always", "b": "often", "c": "unsolved", "d": "often", "new": "barely"}
    table = transitions(prev, cur)
    assert list(table) == list(BUCKETS)
    assert all(list(row) == list(BUCKETS) for row in table.values())
    assert table["barely"] == {"unsolved": 0, "barely": 0, "often": 1, "always": 1}
    assert table["unsolved"]["unsolved"] == 1
    assert table["often"]["often"] == 1
    assert table["always"] == dict.fromkeys(BUCKETS, 0)  # "gone" is not in cur
    assert sum(sum(row.values()) for row in table.values()) == 4


def test_transitions_from_counts():
    r0 = {"a": (10, 2), "b": (10, 0), "c": (10, 10)}
    r1 = {"a": (10, 6), "b": (10, 0), "c": (10, 9)}
    table = transitions(buckets(r0), buckets(r1))
    assert table["barely"]["often"] == 1
    assert table["unsolved"]["unsolved"] == 1
    assert table["always"]["often"] == 1


def test_solved_split_over_rounds():
    history = [
        {"a": (4, 0), "b": (4, 1), "c": (4, 0)},
        {"a": (4, 2), "b": (4, 0), "c": (4, 0), "d": (4, 0)},
    ]
    solved, unsolvable = solved_split(history)
    assert solved == {"a", "b"}  # b stays solved although it failed in round 1
    assert unsolvable == {"c", "d"}
    assert solved_split([]) == (set(), set())


def test_round_summary_is_json_and_complete():
    counts = {"a": (8, 0), "b": (8, 2), "c": (8, 8), "d": (8, 5)}
    s = round_summary(counts, [1, 8])
    assert json.loads(json.dumps(s)) == s
    assert s["n_problems"] == 4 and s["n_samples"] == 32 and s["n_passed"] == 15
    assert s["pass@1"] == pytest.approx((0 + 2 / 8 + 1 + 5 / 8) / 4)
    assert s["pass@8"] == pytest.approx(3 / 4)
    assert s["buckets"] == {"unsolved": 1, "barely": 1, "often": 1, "always": 1}
    assert s["pass_counts"]["b"] == [8, 2]
    lo, hi = s["ci"]["pass@1"]
    assert lo <= s["pass@1"] <= hi and [lo, hi] == list(bootstrap_ci(counts, 1))
    empty = round_summary({}, [1])
    assert empty["pass@1"] is None and empty["buckets"] == dict.fromkeys(BUCKETS, 0)


def test_bootstrap_ci_brackets_the_mean_and_is_deterministic():
    counts = {f"t{i}": (10, i % 11) for i in range(40)}
    mean = mean_pass_at_k(counts, 1)
    lo, hi = bootstrap_ci(counts, 1, iters=2000, seed=3)
    assert lo < mean < hi
    assert (lo, hi) == bootstrap_ci(counts, 1, iters=2000, seed=3)
    assert lo >= 0.0 and hi <= 1.0
    narrow = bootstrap_ci(counts, 1, alpha=0.5, seed=3)
    assert lo <= narrow[0] <= narrow[1] <= hi
    assert bootstrap_ci({"a": (4, 2)}, 1) == (0.5, 0.5)  # one problem: no spread
    assert bootstrap_ci({}, 1) == (0.0, 0.0)


def test_paired_change_ci_is_narrower_than_unpaired_intervals():
    from engine.metrics import bootstrap_ci, paired_change_ci

    # ten problems of very different difficulty, each 2 passes better after (out of 10)
    before = {f"p{i}": (10, i) for i in range(8)}
    after = {f"p{i}": (10, i + 2) for i in range(8)}
    change, lo, hi = paired_change_ci(before, after, 1)
    assert change == pytest.approx(0.2) and lo == pytest.approx(0.2) and hi == pytest.approx(0.2)
    b_lo, b_hi = bootstrap_ci(before, 1)
    a_lo, a_hi = bootstrap_ci(after, 1)
    assert a_lo < b_hi  # unpaired, the two rounds' intervals overlap: noise could explain them
    # only problems measured in both count; none in common: None
    assert paired_change_ci(before, {"p0": (10, 5), "x": (10, 0)}, 1)[0] == pytest.approx(0.5)
    assert paired_change_ci(before, {"x": (10, 1)}, 1) is None
    # mixed changes: the interval spans zero
    mixed = {f"p{i}": (10, i + (2 if i % 2 else -2) if 2 <= i else i) for i in range(8)}
    _, lo, hi = paired_change_ci(before, mixed, 1)
    assert lo < 0 < hi
