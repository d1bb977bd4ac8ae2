"""Benchmark: every diversity and pass metric for 200 problems x 100 samples (issue 5: under 5 s).

Generates realistic samples (functions of 5-40 lines built from a dozen algorithm shapes, with
random names, docstrings, comments, type hints, helpers; per problem a mix from collapsed, where
most samples are one program, to healthy; ~2% truncated so they do not parse), then times what the
runner does per round: norm_hash per sample, problem_diversity per problem, round_diversity,
gauge and the collapse policy, pass@k summary with a bootstrap interval, and the training filter.

    python bench/diversity.py [--problems 200] [--samples 100] [--seed 0] [--distinct]

--distinct is the worst case: no sample repeats another verbatim (no per-text caching helps).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import diversity, metrics  # noqa: E402
from engine import filter as training_filter  # noqa: E402
from engine.config import CollapseConfig  # noqa: E402

TARGET_S = 5.0

NAMES = ["x", "y", "i", "j", "k", "n", "m", "a", "b", "s", "t", "val", "item", "num", "acc",
         "total", "res", "result", "out", "count", "idx", "cur", "prev", "tmp", "elem", "buf",
         "seen", "left", "right", "mid", "lo", "hi", "ans", "key", "word", "ch", "c", "d"]


def _names(rng: random.Random, k: int) -> list[str]:
    return rng.sample(NAMES, k)


# Each shape returns the body lines of a function whose parameters are `p` (a list of names).
def _loop_sum(rng, p, v):
    return [f"{v[0]} = 0", f"for {v[1]} in {p[0]}:", f"    if {v[1]} % {rng.randint(2, 5)} == 0:",
            f"        {v[0]} += {v[1]}", "    else:", f"        {v[0]} -= 1", f"return {v[0]}"]


def _comprehension(rng, p, v):
    op = rng.choice(["*", "+", "-", "//"])
    return [f"return sum([{v[0]} {op} {rng.randint(1, 9)} for {v[0]} in {p[0]} if {v[0]} > {rng.randint(0, 3)}])"]


def _while_two_pointers(rng, p, v):
    return [f"{v[0]}, {v[1]} = 0, len({p[0]}) - 1", f"while {v[0]} < {v[1]}:",
            f"    if {p[0]}[{v[0]}] != {p[0]}[{v[1]}]:", "        return False",
            f"    {v[0]} += 1", f"    {v[1]} -= 1", "return True"]


def _dict_count(rng, p, v):
    return [f"{v[0]} = {{}}", f"for {v[1]} in {p[0]}:",
            f"    {v[0]}[{v[1]}] = {v[0]}.get({v[1]}, 0) + 1",
            f"return [{v[2]} for {v[2]}, {v[3]} in {v[0]}.items() if {v[3]} == {rng.randint(1, 3)}]"]


def _sorted_pairs(rng, p, v):
    return [f"{v[0]} = sorted({p[0]})", f"for {v[1]} in range(len({v[0]}) - 1):",
            f"    if abs({v[0]}[{v[1]} + 1] - {v[0]}[{v[1]}]) < {p[-1]}:", "        return True",
            "return False"]


def _nested_loops(rng, p, v):
    return [f"for {v[0]} in range(len({p[0]})):", f"    for {v[1]} in range({v[0]} + 1, len({p[0]})):",
            f"        if abs({p[0]}[{v[0]}] - {p[0]}[{v[1]}]) < {p[-1]}:", "            return True",
            "return False"]


def _string_build(rng, p, v):
    return [f"{v[0]} = []", f"for {v[1]} in str({p[0]}):", f"    if {v[1]}.isalpha():",
            f"        {v[0]}.append({v[1]}.{rng.choice(['upper', 'lower', 'swapcase'])}())",
            f"    elif {v[1]}.isdigit():", f"        {v[0]}.append(str(int({v[1]}) * 2))",
            f"return ''.join({v[0]})"]


def _recursive(rng, p, v):
    return [f"if len({p[0]}) <= 1:", f"    return list({p[0]})", f"{v[0]} = len({p[0]}) // 2",
            f"{v[1]} = {rng.choice(['sorted', 'list'])}({p[0]}[:{v[0]}])",
            f"{v[2]} = {rng.choice(['sorted', 'list'])}({p[0]}[{v[0]}:])",
            f"return {v[1]} + {v[2]}"]


def _try_parse(rng, p, v):
    sep = rng.choice(["None", repr(",")])
    return ["try:", f"    {v[0]} = [int({v[1]}) for {v[1]} in str({p[0]}).split({sep})]",
            "except ValueError:", "    return []", f"return sorted({v[0]}, reverse={rng.choice([True, False])})"]


def _helper_prime(rng, p, v):
    return [f"def {v[3]}({v[0]}):", f"    if {v[0]} < 2:", "        return False",
            f"    for {v[1]} in range(2, int({v[0]} ** 0.5) + 1):", f"        if {v[0]} % {v[1]} == 0:",
            "            return False", "    return True",
            f"return [{v[2]} for {v[2]} in {p[0]} if {v[3]}({v[2]})]"]


def _lambda_map(rng, p, v):
    return [f"{v[0]} = lambda {v[1]}: {v[1]} * {rng.randint(2, 7)} + {rng.randint(0, 3)}",
            f"return list(map({v[0]}, filter(lambda {v[2]}: {v[2]} {rng.choice(['>', '<', '!='])} 0, {p[0]})))"]


def _accumulate_max(rng, p, v):
    return [f"{v[0]} = {v[1]} = 0", f"for {v[2]} in {p[0]}:", f"    {v[1]} = max({v[2]}, {v[1]} + {v[2]})",
            f"    {v[0]} = max({v[0]}, {v[1]})", f"return {v[0]}"]


SHAPES = [_loop_sum, _comprehension, _while_two_pointers, _dict_count, _sorted_pairs, _nested_loops,
          _string_build, _recursive, _try_parse, _helper_prime, _lambda_map, _accumulate_max]


def make_program(rng: random.Random, entry: str, shape) -> str:
    """One sample: `shape` with fresh names and random decoration."""
    p = _names(rng, 2)
    v = [x for x in _names(rng, 8) if x not in p][:4]
    while len(v) < 4:
        v.append(f"z{len(v)}")
    body = shape(rng, p, v)
    hints = rng.random() < 0.4
    args = ", ".join(f"{a}: list" if hints else a for a in p)
    lines = [f"def {entry}({args}){' -> object' if hints else ''}:"]
    r = rng.random()
    if r < 0.5:  # chat answers often repeat the prompt's docstring (HumanEval's: ~300 chars)
        lines += ['    """' + rng.choice(["Return the answer.", "Solve the task for the given input."]),
                  "    Given a list of numbers and a threshold, check whether the condition described",
                  "    below holds for the input; return the value the examples show.",
                  "    >>> " + f"{entry}([1, 2, 3], 2)", f"    {rng.randint(0, 9)}",
                  "    >>> " + f"{entry}([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)", "    True",
                  "    >>> " + f"{entry}([], 0)", "    0", '    """']
    elif r < 0.7:
        lines += ['    """' + rng.choice(["Return the answer.", "Solve the task for the given input.",
                                             "Compute the result as described in the prompt."]) + '"""']
    for line in body:
        if rng.random() < 0.15:
            lines.append("    # " + rng.choice(["edge case", "main loop", "accumulate", "done"]))
        lines.append("    " + line)
    if rng.random() < 0.2:
        lines = ["import math", ""] + lines
    if rng.random() < 0.15:
        lines += ["", "", "if __name__ == '__main__':", f"    print({entry}([1, 2, 3], 2))"]
    return "\n".join(lines) + "\n"


def make_problem(rng: random.Random, task: int, n: int, distinct: bool = False) -> tuple[list[str], list[bool]]:
    entry = f"solve_{task}"
    # Collapse level: how many shapes the samples use and how often one text repeats verbatim.
    n_shapes = rng.choice([1, 1, 2, 3, 4, 6])
    shapes = rng.sample(SHAPES, n_shapes)
    repeat = 0.0 if distinct else rng.choice([0.0, 0.1, 0.3, 0.7, 0.95])
    pass_rate = rng.choice([0.0, 0.0, 0.05, 0.2, 0.5, 0.9, 1.0])
    completions: list[str] = []
    for _ in range(n):
        if completions and rng.random() < repeat:
            completions.append(completions[0])
            continue
        code = make_program(rng, entry, rng.choice(shapes))
        if rng.random() < 0.02:
            code = code[: rng.randrange(10, max(11, len(code) - 5))]  # truncated: does not parse
        completions.append(code)
    passed = [rng.random() < pass_rate for _ in range(n)]
    return completions, passed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--distinct", action="store_true", help="worst case: no sample repeats another verbatim")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    data = {f"task/{t}": make_problem(rng, t, args.samples, args.distinct) for t in range(args.problems)}
    n_texts = sum(len(set(c)) for c, _ in data.values())
    print(f"{args.problems} problems x {args.samples} samples, {n_texts} distinct texts, "
          f"mean {sum(len(x) for c, _ in data.values() for x in c) / (args.problems * args.samples):.0f} chars")

    t0 = time.perf_counter()
    # What verify does per sample (the runner stores it): the normalized-program hash.
    hashes = {task: [diversity.norm_hash(c) for c in comps] for task, (comps, _) in data.items()}
    t1 = time.perf_counter()
    # behaviour signatures as the verifier stores them (here: one of a few per problem, as samples answer alike)
    sigs = {task: [f"sig{rng.randrange(5)}" for _ in comps] for task, (comps, _) in data.items()}
    per_problem = {
        task: diversity.problem_diversity(comps, passed, args.k, hashes=hashes[task], signatures=sigs[task])
        for task, (comps, passed) in data.items()
    }
    t2 = time.perf_counter()
    cur = diversity.round_diversity(per_problem)
    g = diversity.gauge(cur, cur)
    state = diversity.assess_collapse([g, g], CollapseConfig())
    counts = {task: (len(p), sum(p)) for task, (_, p) in data.items()}
    summary = metrics.round_summary(counts, [1, args.k])
    ci = metrics.bootstrap_ci(counts, 1)
    samples = [
        {"id": i * 1000 + j, "task_id": task, "idx": j, "status": "passed" if ok else "failed",
         "completion": c, "norm_hash": h}
        for i, (task, (comps, passed)) in enumerate(data.items())
        for j, (c, ok, h) in enumerate(zip(comps, passed, hashes[task]))
    ]
    kept = training_filter.select_training(samples, verified=True, dedupe=True, max_per_problem=4, seed=0)
    t3 = time.perf_counter()

    total = t3 - t0
    print(f"norm_hash per sample:      {t1 - t0:6.2f} s")
    print(f"problem_diversity:         {t2 - t1:6.2f} s")
    print(f"round/gauge/pass@k/filter: {t3 - t2:6.2f} s")
    print("round means: " + ", ".join(f"{k} {cur[k]:.3f}" for k in diversity.COMPONENTS if cur[k] is not None))
    print(f"pass@1 {summary['pass@1']:.3f} (95% CI {ci[0]:.3f}-{ci[1]:.3f}), "
          f"kept {len(kept)} for training, policy {state[0]}")
    print(f"TOTAL {total:.2f} s = {total / TARGET_S:.2f} x the {TARGET_S:.0f} s target "
          f"({'within' if total <= TARGET_S else 'OVER'})")


if __name__ == "__main__":
    main()
