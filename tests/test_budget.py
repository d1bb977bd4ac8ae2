"""Sample budget (engine/budget.py): even and adaptive allocation, hint split, closest attempt, hint text."""

from __future__ import annotations

import pytest

from engine.budget import Seen, allocate, closest_attempt, credit, even_split, hint_text, split_hints, weight

TASKS = ["always", "often", "barely", "close", "far", "new"]
PREVIOUS = {"always": Seen(10, 10), "often": Seen(10, 6), "barely": Seen(10, 1),
            "close": Seen(10, 0, credit=0.8), "far": Seen(10, 0, credit=0.0)}


def test_even_split_spends_the_whole_budget_remainder_first():
    assert even_split(["a", "b", "c"], 11) == {"a": (4, "even split"), "b": (4, "even split"), "c": (3, "even split")}
    assert even_split([], 5) == {}


def test_not_adaptive_or_round_0_is_an_even_split():
    assert allocate(TASKS, 60, PREVIOUS, adaptive=False, min_n=2, max_n=40) == even_split(TASKS, 60)
    assert allocate(TASKS, 60, None, adaptive=True, min_n=2, max_n=40) == even_split(TASKS, 60)


@pytest.mark.parametrize("total", [12, 60, 61, 100, 239])
def test_adaptive_spends_exactly_the_budget_within_bounds(total):
    plan = allocate(TASKS, total, PREVIOUS, adaptive=True, min_n=2, max_n=40)
    ns = {t: n for t, (n, _) in plan.items()}
    assert sum(ns.values()) == total
    assert all(2 <= n <= 40 for n in ns.values())


def test_adaptive_favours_barely_and_nearly_solved_over_always_solved():
    ns = {t: n for t, (n, _) in allocate(TASKS, 60, PREVIOUS, adaptive=True, min_n=2, max_n=40).items()}
    assert ns["barely"] > ns["often"] > ns["always"]
    assert ns["close"] > ns["far"]  # partial credit tells nearly-solved from hopeless
    assert ns["always"] == min(ns.values())
    # proportional above the floor: barely (weight 2) gets twice often's (weight 1) extra samples, +-1
    assert abs((ns["barely"] - 2) - 2 * (ns["often"] - 2)) <= 2


def test_adaptive_caps_and_floor():
    ns = {t: n for t, (n, _) in allocate(TASKS, 200, PREVIOUS, adaptive=True, min_n=3, max_n=50).items()}
    assert max(ns.values()) == 50 and min(ns.values()) >= 3
    # a budget below the floor: the floor gives way, the budget holds
    ns = {t: n for t, (n, _) in allocate(TASKS, 6, PREVIOUS, adaptive=True, min_n=2, max_n=40).items()}
    assert sum(ns.values()) == 6


def test_weights_and_reasons():
    assert weight(None) == (1.0, "no earlier round")
    w, why = weight(Seen(10, 0, credit=0.5))
    assert w == pytest.approx(1.25) and "50% of asserts" in why
    assert weight(Seen(10, 10))[0] < weight(Seen(10, 5))[0] < weight(Seen(10, 2))[0]


def test_hints_go_to_unsolved_problems_closest_first():
    plan = split_hints([("a", 0.0), ("b", 0.5), ("c", 0.9)], 7)
    assert {t: n for t, (n, _) in plan.items()} == {"c": 3, "b": 2, "a": 2}
    assert split_hints([("a", 0.0), ("b", 0.5)], 1) == {"b": (1, "unsolved this round")}
    assert split_hints([], 8) == {}


def test_closest_attempt_and_its_hint():
    samples = [
        dict(idx=0, status="failed", detail="assertion failed: assert f(1) == 2", asserts_passed=0, asserts_total=3),
        dict(idx=1, status="timed out", detail="no verdict within 3 s", asserts_passed=2, asserts_total=3),
        dict(idx=2, status="failed", detail="assertion failed: assert f(3) == 4", asserts_passed=2, asserts_total=3),
        dict(idx=3, status="passed", detail="", asserts_passed=3, asserts_total=3),
    ]
    best = closest_attempt(samples)
    assert best["idx"] == 2  # most asserts passed, and it ran to a verdict (the timed-out one did not)
    assert credit(best) == pytest.approx(2 / 3) and credit({"asserts_total": None}) == 0.0
    text = hint_text(best, show_attempt=True, code="def f(x):\n    return x\n")
    assert "assert f(3) == 4" in text and "2 of the 3" in text and "return x" in text
    assert "return x" not in hint_text(best, show_attempt=False, code="def f(x):\n    return x\n")
    assert closest_attempt([samples[3]]) is None


def test_the_shown_attempt_is_read_back_from_the_hint():
    from engine.budget import shown_attempt

    attempt = dict(status="failed", detail="assertion failed: assert f(1) == 2", asserts_passed=0, asserts_total=1)
    code = "def f(x):\n    return x\n"
    assert shown_attempt(hint_text(attempt, show_attempt=True, code=code)) == code.strip("\n")
    assert shown_attempt(hint_text(attempt, show_attempt=False, code=code)) is None
