"""Normalization, tokens, per-problem diversity, the gauge and the collapse policy."""

from __future__ import annotations

import io
import itertools
import json
import random
import tokenize

import pytest

from engine.config import CollapseConfig
from engine.diversity import (
    COMPONENTS,
    GAUGE_COMPONENTS,
    assess_collapse,
    gauge,
    norm_hash,
    normalize,
    problem_diversity,
    round_diversity,
    tokens,
)

# -- normalization -------------------------------------------------------------------------------

SORT_PAIRS = '''
def has_close_elements(numbers, threshold):
    """Check if any two numbers are closer than threshold."""
    # sort so that neighbours are the closest pairs
    ordered = sorted(numbers)
    for i in range(len(ordered) - 1):
        if abs(ordered[i + 1] - ordered[i]) < threshold:
            return True
    return False
'''

SORT_PAIRS_RENAMED = '''
def has_close_elements(xs, eps):
    ys = sorted(xs)  # different names, no docstring, other layout
    for k in range(len(ys) - 1):
        if abs(ys[k + 1] - ys[k]) < eps: return True
    return False
'''

NESTED_LOOPS = '''
def has_close_elements(numbers, threshold):
    for i, a in enumerate(numbers):
        for j, b in enumerate(numbers):
            if i != j and abs(a - b) < threshold:
                return True
    return False
'''

ANY_PAIRS = '''
from itertools import combinations

def has_close_elements(numbers, threshold):
    return any(abs(a - b) < threshold for a, b in combinations(numbers, 2))
'''


def test_renamed_program_normalizes_to_the_same_form():
    assert normalize(SORT_PAIRS) == normalize(SORT_PAIRS_RENAMED)
    assert norm_hash(SORT_PAIRS) == norm_hash(SORT_PAIRS_RENAMED)


def test_different_algorithms_stay_different():
    forms = {normalize(p) for p in (SORT_PAIRS, NESTED_LOOPS, ANY_PAIRS)}
    assert len(forms) == 3
    assert len({norm_hash(p) for p in (SORT_PAIRS, NESTED_LOOPS, ANY_PAIRS)}) == 3


def test_constants_and_operators_matter():
    assert normalize("def f(x):\n    return x + 1\n") != normalize("def f(x):\n    return x + 2\n")
    assert normalize("def f(x):\n    return x + 1\n") != normalize("def f(x):\n    return x - 1\n")
    assert normalize("def f(x):\n    return x + 1\n") != normalize("def f(x):\n    return x + 1.0\n")


def test_what_is_kept_and_what_is_renamed():
    code = """
import math
from collections import Counter as C

def entry(values, k=2):
    total = 0
    def helper(v):
        return math.sqrt(v)
    for item in values:
        total += helper(item)
    counts = C(values)
    return sorted([w for w in counts], key=len), total.real
"""
    form = normalize(code)
    for kept in ("'entry'", "'math'", "'C'", "'sqrt'", "'sorted'", "'len'", "'real'", "arg='key'"):
        assert kept in form, kept
    for renamed in ("'values'", "'total'", "'helper'", "'item'", "'counts'", "'w'", "'v'", "'k'"):
        assert renamed not in form, renamed
    assert "'v0'" in form


def test_names_are_numbered_per_binding_not_per_spelling():
    # The loop variable of each function is its own variable: spelling it i in both or i and j
    # is the same program.
    a = "def h(n):\n    for i in range(n):\n        pass\n\ndef f(m):\n    for i in m:\n        h(i)\n"
    b = "def h(n):\n    for i in range(n):\n        pass\n\ndef f(m):\n    for j in m:\n        h(j)\n"
    assert normalize(a) == normalize(b)


def test_scopes_globals_nonlocals_and_classes():
    a = """
LIMIT = 10
class Box:
    size = 3
    def grow(self, by):
        self.size += by
        return self.size
def f(xs):
    global LIMIT
    count = 0
    def bump():
        nonlocal count
        count += 1
    for x in xs:
        if (y := x * 2) < LIMIT:
            bump()
    try:
        pass
    except ValueError as err:
        print(err, y)
    return count, lambda q, r=count: q + r, Box().grow(1)
"""
    b = a.replace("LIMIT", "CAP").replace("count", "n").replace("bump", "inc").replace("err", "e")
    b = b.replace("xs", "items").replace("(y :=", "(z :=").replace(", y)", ", z)")
    assert normalize(a) == normalize(b)
    form = normalize(a)
    assert "'Box'" in form and "'grow'" in form and "'size'" in form  # class API kept
    assert "'LIMIT'" not in form and "'count'" not in form


def test_builtin_rebound_as_local_is_renamed():
    a = "def f(xs):\n    sum = 0\n    for x in xs:\n        sum += x\n    return sum\n"
    b = "def f(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total\n"
    assert normalize(a) == normalize(b)


def test_docstrings_comments_and_layout_are_dropped():
    a = 'def f(x):\n    """Doc."""\n    # comment\n    return (x +\n            1)\n'
    b = "def f(x): return x+1"
    assert normalize(a) == normalize(b)
    only_doc = 'def f(x):\n    """Only a docstring."""\n'
    assert normalize(only_doc) == normalize("def f(x):\n    pass\n")


def test_unparsable_code():
    broken = "def f(x:\n    return x +"
    assert normalize(broken) is None
    h = norm_hash(broken)
    assert h.startswith("raw:")
    assert norm_hash("def f(x:\n  return x +") == h  # only whitespace differs
    assert norm_hash("def f(y:\n    return y +") != h
    assert not norm_hash("def f(x):\n    return x\n").startswith("raw:")
    assert normalize(r"x = '\x00'") is not None  # an escaped NUL in a literal is fine
    assert normalize("x = 1\x00") is None  # a NUL in the source is not


def test_completion_style_indented_body_parses():
    body = "    total = 0\n    for v in numbers:\n        total += v\n    return total\n"
    assert normalize(body) is not None
    assert normalize(body) == normalize(body.replace("total", "acc"))


def test_hash_equality_agrees_with_form_equality():
    programs = [SORT_PAIRS, SORT_PAIRS_RENAMED, NESTED_LOOPS, ANY_PAIRS, "x = u'a'", "x = 'a'",
                "def f(a, /, b, *c, d=1, **e):\n    return a\n", "def f(a, b, *c, d=1, **e):\n    return a\n",
                "match p:\n    case [x, *rest]:\n        pass\n    case {'k': v, **kw}:\n        pass\n",
                "match p:\n    case [y, *more]:\n        pass\n    case {'k': w, **other}:\n        pass\n"]
    for a, b in itertools.combinations(programs, 2):
        assert (normalize(a) == normalize(b)) == (norm_hash(a) == norm_hash(b)), (a, b)
    assert normalize(programs[-1]) == normalize(programs[-2])


# -- tokens --------------------------------------------------------------------------------------

TRICKY = [
    SORT_PAIRS,
    ANY_PAIRS,
    'x = rb"a\\"b" + f\'{y!r:>10}\' + u"z" + \'\'\'multi\nline\'\'\' ** 2\n',
    "a = 0x1F_00 + 1_000 + 1.5e-3 + 3j + .5 + 1e10 + 0o17 + 0b1\n",
    "def f(a, /, *b, **c) -> int:\n    x: int = 1\n    x **= 2; x //= 3; x >>= 1\n    return (x := x) @ y\n",
    "total = (1 +\n         2) \\\n    + 3  # trailing comment\n",
    "s = 'it\\'s'\nt = \"\"\"a \"quoted\" word\"\"\"\n...\n",
    "if x:\n    pass\nelif y != z:\n    del a[1:2]\n",
    "",
    "# only a comment\n",
]


def _reference_tokens(code: str) -> list[str]:
    significant = (tokenize.NAME, tokenize.NUMBER, tokenize.STRING, tokenize.OP)
    return [t.string for t in tokenize.generate_tokens(io.StringIO(code).readline) if t.type in significant]


@pytest.mark.parametrize("code", TRICKY)
def test_tokens_equal_pythons_tokenizer(code):
    assert tokens(code) == _reference_tokens(code)


def test_tokens_survive_broken_code():
    assert tokens("def f(:\n  return 'abc") == ["def", "f", "(", ":", "return", "'", "abc"]
    assert tokens("x = $ ?") == ["x", "=", "$", "?"]


# -- per-problem diversity -----------------------------------------------------------------------

TINY = "def f(a):\n    return a + 1\n"  # 10 tokens, 9 distinct bigrams
TINY_RENAMED = "def f(b):\n    return b + 1\n"  # shares 5 of its 9 bigrams with TINY


def _bigrams(code):
    t = tokens(code)
    return set(zip(t, t[1:]))


def _reference_lexical(codes):
    sims = []
    for a, b in itertools.combinations(codes, 2):
        x, y = _bigrams(a), _bigrams(b)
        sims.append(len(x & y) / len(x | y) if x | y else 1.0)
    return 1 - sum(sims) / len(sims)


def test_n_copies_of_one_program_are_collapsed():
    d = problem_diversity([TINY] * 4, [True] * 4, k=4)
    assert d["structural"] == pytest.approx(1 / 4)
    assert d["lexical"] == pytest.approx(0.0)
    assert d["distinct2"] == pytest.approx(9 / 36)
    assert d["gap"] == 0.0  # always solved: more draws add nothing
    assert d["structural_passed"] == pytest.approx(1 / 4)
    assert d["lexical_passed"] == pytest.approx(0.0)
    assert d["unparsable"] == 0


def test_renamed_variables_collapse_structurally_not_lexically():
    d = problem_diversity([TINY, TINY_RENAMED], [True, False], k=2)
    assert d["structural"] == pytest.approx(1 / 2)  # one program
    assert d["lexical"] == pytest.approx(1 - 5 / 13)  # Jaccard 5 / (9 + 9 - 5)
    assert d["distinct2"] == pytest.approx(13 / 18)
    assert d["gap"] == pytest.approx(1.0 - 0.5)  # pass@2 = 1, pass@1 = 0.5
    assert d["structural_passed"] is None and d["lexical_passed"] is None  # one passing sample


def test_different_algorithms_are_healthy():
    codes = [SORT_PAIRS, NESTED_LOOPS, ANY_PAIRS, SORT_PAIRS_RENAMED]
    d = problem_diversity(codes, [True, True, False, False], k=4)
    assert json.loads(json.dumps(d)) == d  # stored per problem as JSON
    assert d["structural"] == pytest.approx(3 / 4)  # SORT_PAIRS_RENAMED repeats SORT_PAIRS
    assert d["lexical"] == pytest.approx(_reference_lexical(codes))
    assert d["lexical"] > 0.5
    assert d["structural_passed"] == 1.0
    assert d["lexical_passed"] == pytest.approx(_reference_lexical(codes[:2]))
    pooled = [b for c in codes for b in zip(tokens(c), tokens(c)[1:])]
    assert d["distinct2"] == pytest.approx(len(set(pooled)) / len(pooled))
    assert d["gap"] == pytest.approx(1.0 - 0.5)


def test_unparsable_samples_are_counted_apart():
    broken = "def f(a:\n    return a +"
    d = problem_diversity([TINY, broken, broken, "def g(:"], [True, False, False, False], k=1)
    assert d["unparsable"] == 3
    assert d["structural"] == pytest.approx(3 / 4)  # TINY, broken (twice = once), the other
    assert d["gap"] == 0.0  # k = 1


def test_gap_uses_k():
    d = problem_diversity([TINY] * 4, [True, False, False, False], k=2)
    assert d["gap"] == pytest.approx(0.5 - 0.25)  # pass@2 = 1 - C(3,2)/C(4,2)
    d = problem_diversity([TINY] * 4, [True, False, False, False], k=100)  # k > n: k = n
    assert d["gap"] == pytest.approx(1 - 0.25)


def test_precomputed_hashes_are_used():
    d = problem_diversity([TINY, TINY_RENAMED], [True, True], k=2, hashes=["a", "b"])
    assert d["structural"] == 1.0


def test_behavioural_distinctness_counts_signatures():
    codes = ["return a", "return b", "return c", "return d", "return e"]
    passed = [True, True, True, False, False]
    d = problem_diversity(codes, passed, k=2, signatures=["s1", "s1", "s2", "s3", None])
    assert d["behavioural"] == 3 / 4  # the sample without a signature is left out
    assert d["behavioural_passed"] == 2 / 3
    plain = problem_diversity(codes, passed, k=2)
    assert plain["behavioural"] is None and plain["behavioural_passed"] is None  # no signatures: undefined
    assert problem_diversity(codes, passed, k=2, signatures=[None] * 5)["behavioural"] is None


def test_edge_sizes():
    assert problem_diversity([], [], k=1)["structural"] is None
    one = problem_diversity([TINY], [True], k=1)
    assert one["structural"] is None and one["lexical"] is None and one["distinct2"] is None
    assert one["gap"] == 0.0
    empty = problem_diversity(["", ""], [False, False], k=2)
    assert empty["lexical"] == 0.0  # two identical (empty) texts
    assert empty["distinct2"] is None  # no bigrams
    with pytest.raises(ValueError):
        problem_diversity([TINY], [True, False], k=1)


def test_lexical_matches_reference_on_random_samples():
    rng = random.Random(1)
    words = ["x", "y", "+", "-", "(", ")", "1", "2", "return", "for", "in"]
    codes = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 30))) for _ in range(30)]
    codes += codes[:5]  # verbatim repeats go through the per-text cache
    passed = [rng.random() < 0.5 for _ in codes]
    d = problem_diversity(codes, passed, k=5)
    assert d["lexical"] == pytest.approx(_reference_lexical(codes))
    assert d["lexical_passed"] == pytest.approx(_reference_lexical([c for c, p in zip(codes, passed) if p]))


def test_round_diversity_means_over_defined_values():
    per = {
        "a": problem_diversity([TINY] * 4, [True] * 4, k=4),
        "b": problem_diversity([TINY, TINY_RENAMED], [True, False], k=2),
        "c": problem_diversity(["x ="] * 2, [False, False], k=2),
    }
    r = round_diversity(per)
    assert json.loads(json.dumps(r)) == r
    assert r["n_problems"] == 3 and r["n_samples"] == 8
    assert r["unparsable_share"] == pytest.approx(2 / 8)
    assert r["structural"] == pytest.approx((1 / 4 + 1 / 2 + 1 / 2) / 3)
    assert r["structural_passed"] == pytest.approx(1 / 4)  # only a has two passing samples
    assert r["n_structural_passed"] == 1
    assert round_diversity({})["structural"] is None


# -- gauge and collapse policy -------------------------------------------------------------------

ROUND0 = {"structural": 0.78, "lexical": 0.60, "gap": 0.20, "distinct2": 0.30,
          "structural_passed": None, "lexical_passed": 0.5, "distinct2_passed": 0.0}


def _round(structural, lexical, gap):
    return dict(ROUND0, structural=structural, lexical=lexical, gap=gap)


def test_gauge_of_round0_is_100():
    g = gauge(ROUND0, ROUND0)
    assert g["value"] == pytest.approx(100.0)
    assert set(g["components"]) == set(COMPONENTS)
    assert all(g["components"][k]["in_gauge"] for k in GAUGE_COMPONENTS)
    assert g["components"]["structural_passed"]["relative"] is None
    assert g["components"]["distinct2_passed"]["relative"] is None  # 0 at round 0
    assert json.loads(json.dumps(g)) == g


def test_gauge_is_the_mean_of_relative_components():
    g = gauge(_round(0.39, 0.45, 0.10), ROUND0)
    assert g["components"]["structural"]["relative"] == pytest.approx(50.0)
    assert g["components"]["lexical"]["relative"] == pytest.approx(75.0)
    assert g["components"]["gap"]["relative"] == pytest.approx(50.0)
    assert g["value"] == pytest.approx((50 + 75 + 50) / 3)


def test_gauge_leaves_out_a_component_that_is_zero_at_round0():
    base = dict(ROUND0, gap=0.0)  # a weak model: no problem is sometimes solved
    g = gauge(dict(base, structural=0.39, gap=0.1), base)
    assert g["components"]["gap"]["in_gauge"] is False
    assert "round 0" in g["components"]["gap"]["note"]
    assert g["value"] == pytest.approx((50 + 100) / 2)


def test_gauge_caps_a_component_that_grew():
    g = gauge(_round(0.39, 0.60, 2.0), ROUND0)  # gap x10 cannot hide structural at 50%
    assert g["components"]["gap"]["relative"] == pytest.approx(1000.0)
    assert g["value"] == pytest.approx((50 + 100 + 150) / 3)


def test_gauge_undefined_without_any_baseline():
    zero = {k: 0.0 for k in COMPONENTS}
    assert gauge(zero, zero)["value"] is None
    assert assess_collapse([gauge(zero, zero)], CollapseConfig())[0] == "ok"


CFG = CollapseConfig()  # warn below 0.7, collapse below 0.5 or a one-round drop over 0.2


def _gauges(*rounds):
    return [gauge(r, ROUND0) for r in (ROUND0, *rounds)]


def test_policy_ok():
    state, reason = assess_collapse(_gauges(_round(0.70, 0.58, 0.19)), CFG)
    assert state == "ok"
    assert "gauge 9" in reason
    assert assess_collapse([], CFG)[0] == "ok"
    assert assess_collapse(_gauges(), CFG)[0] == "ok"  # round 0 alone


def test_policy_warns_below_warn_fraction():
    rounds = (_round(0.70, 0.55, 0.18), _round(0.62, 0.45, 0.12), _round(0.31, 0.50, 0.16))
    gauges = _gauges(*rounds)
    assert [round(g["value"]) for g in gauges] == [100, 90, 71, 68]
    state, reason = assess_collapse(gauges, CFG)
    assert state == "warn"
    assert "structural distinctness 0.31 vs 0.78 at round 0" in reason
    assert "gauge 68 < 70" in reason


def test_policy_warns_when_one_watched_component_falls_while_the_gauge_holds():
    # collapse.toml's round 1, in shape: the gap doubled, text diversity fell
    rounds = (_round(0.54, 0.35, 0.42),)
    gauges = _gauges(*rounds)
    assert gauges[-1]["value"] > 70  # the mean alone would say ok
    state, reason = assess_collapse(gauges, CFG)
    assert state == "warn"
    assert reason.startswith("lexical diversity at 58% of round 0 (warn below 70%) while the gauge holds at")
    assert assess_collapse(_gauges(_round(0.56, 0.43, 0.40)), CFG)[0] == "ok"  # both at 72%: no warning


def test_policy_collapses_below_stop_fraction():
    rounds = (_round(0.70, 0.50, 0.17), _round(0.50, 0.40, 0.12), _round(0.31, 0.30, 0.09))
    gauges = _gauges(*rounds)
    assert round(gauges[-1]["value"]) == 45 and round(gauges[-2]["value"]) == 64  # drop 19: no drop event
    state, reason = assess_collapse(gauges, CFG)
    assert state == "collapse"
    assert reason.startswith("gauge 45 < 50")
    assert "structural distinctness 0.31 vs 0.78 at round 0" in reason


def test_policy_collapses_on_a_sharp_one_round_drop():
    gauges = _gauges(_round(0.78, 0.60, 0.20), _round(0.50, 0.50, 0.16))
    assert round(gauges[-1]["value"]) == 76  # above the warn line, but 24 points in one round
    state, reason = assess_collapse(gauges, CFG)
    assert state == "collapse"
    assert "fell 24 points" in reason
    assert "structural distinctness 0.50 vs 0.78 the round before, 0.78 at round 0" in reason


def test_policy_counts_a_drop_only_below_round0_level():
    gauges = _gauges(_round(0.78, 0.60, 0.60), _round(0.663, 0.60, 0.20))  # 117 -> 95
    assert gauges[1]["value"] - gauges[2]["value"] > 20
    assert assess_collapse(gauges, CFG)[0] == "ok"  # only 5 of them were below round 0's level
    strict = CollapseConfig(max_drop=0.05)
    assert assess_collapse(_gauges(_round(0.78, 0.60, 0.60), _round(0.624, 0.60, 0.20)), strict)[0] == "collapse"


def test_policy_thresholds_come_from_config():
    gauges = _gauges(_round(0.62, 0.50, 0.17))  # ~84
    assert assess_collapse(gauges, CFG)[0] == "ok"
    assert assess_collapse(gauges, CollapseConfig(warn_fraction=0.9))[0] == "warn"
    assert assess_collapse(gauges, CollapseConfig(stop_fraction=0.9, warn_fraction=0.95))[0] == "collapse"


def test_end_to_end_collapsing_campaign_is_caught():
    """Round 0: three algorithms in 8 samples; round 1: one algorithm under two spellings;
    round 2: one text."""
    healthy = [SORT_PAIRS, NESTED_LOOPS, ANY_PAIRS, SORT_PAIRS_RENAMED] * 2
    renamed = [SORT_PAIRS, SORT_PAIRS_RENAMED] * 4
    copies = [SORT_PAIRS] * 8
    passed = [True, False] * 4

    def rnd(codes):
        return round_diversity({f"t{i}": problem_diversity(codes, passed, k=8) for i in range(3)})

    r0, r1, r2 = rnd(healthy), rnd(renamed), rnd(copies)
    gauges = [gauge(r0, r0), gauge(r1, r0), gauge(r2, r0)]
    assert gauges[1]["value"] > gauges[2]["value"]
    state, reason = assess_collapse(gauges[:2], CFG)
    assert state == "collapse" and "fell 38 points" in reason
    assert "structural distinctness 0.12 vs 0.38 the round before, 0.38 at round 0" in reason  # 1/8, 3/8
    state, reason = assess_collapse(gauges, CFG)
    assert state == "collapse" and reason.startswith("gauge 44 < 50")
