"""Realistic workspaces for the TUI's tests and benchmark, written through the Store API only.

Everything is deterministic (a fake clock drives every timestamp the store writes), so snapshots of
screens that show times and ages do not change between runs:

- #1 `humaneval-sd`: finished, 3 training rounds (rounds 0-3), 16 train + 6 held-out problems, n = 8,
  samples of every status, a diversity warning in the last rounds, a training loss log;
- #2 `mbpp-smoke`: running, round 1 of 2 in the verify stage (some samples pending), fresh heartbeat;
- #3 `qwen-gpu`: its engine died in round 0 (stale heartbeat: shown as "engine lost").

`seed_big` writes the benchmark's campaign: 200 problems x 3 rounds x 100 samples (60k samples).
"""

from __future__ import annotations

import contextlib
import math
import random
import zlib
from pathlib import Path
from typing import Iterator
from unittest import mock

from engine import metrics
from engine.problems import Problem
from engine.store import Store

T0 = 1767261600.0  # 2026-01-01 10:00 UTC: when campaign #1 was created
NOW = T0 + 2 * 86400 + 3 * 3600  # the frozen "now" of the tests (2026-01-03 13:00 UTC)

COMPONENTS = ("structural", "lexical", "distinct2", "gap", "structural_passed", "lexical_passed", "distinct2_passed")
IN_GAUGE = ("structural", "lexical", "gap")


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def tick(self, seconds: float) -> float:
        self.t += seconds
        return self.t


@contextlib.contextmanager
def frozen(clock: Clock) -> Iterator[Clock]:
    """Every time.time() the store calls returns the clock's time."""
    with mock.patch("engine.store.time.time", clock):
        yield clock


def config_text(name: str, rounds: int, n: int, source: str, model: str = "smollm2-135m-instruct",
                k: tuple[int, ...] = (1, 8)) -> str:
    return (
        f'name = "{name}"\nseed = 1234\nrounds = {rounds}\n\n[model]\nspec = "{model}"\n\n'
        f'[problems]\nsource = "{source}"\nlimit = 20\n\n[sampling]\nn = {n}\ntemperature = 0.8\n\n'
        f"[eval]\nk = [{', '.join(map(str, k))}]\n\n[collapse]\nwarn_fraction = 0.7\nstop_fraction = 0.5\n"
    )


# ---------------------------------------------------------------------------- problems and programs
VERBS = ["sum", "sort", "count", "filter", "reverse", "merge", "find", "rotate", "split", "flatten", "dedupe",
         "pair", "scale", "clip", "shift", "group"]
NOUNS = ["digits", "words", "evens", "primes", "vowels", "pairs", "items", "chunks", "runs", "peaks", "gaps",
         "keys"]


def make_problem(task_id: str, i: int) -> Problem:
    fname = f"{VERBS[i % len(VERBS)]}_{NOUNS[(i * 7) % len(NOUNS)]}"
    prompt = (
        f"def {fname}(xs: list) -> list:\n"
        f'    """Return the {NOUNS[(i * 7) % len(NOUNS)]} of xs, {VERBS[i % len(VERBS)]}ed.\n'
        f"    >>> {fname}([3, 1, 2])\n    [1, 2, 3]\n"
        f'    """\n'
    )
    test = "def check(candidate):\n    assert candidate([3, 1, 2]) == [1, 2, 3]\n    assert candidate([]) == []\n"
    return Problem(task_id=task_id, prompt=prompt, entry_point=fname, test=test)


PASSING = [
    "    return sorted(xs)\n",
    "    result = list(xs)\n    result.sort()\n    return result\n",
    "    out = []\n    for x in xs:\n        out.append(x)\n    return sorted(out)\n",
    "    if not xs:\n        return []\n    return sorted(xs, key=lambda v: v)\n",
    "    ys = [x for x in xs]\n    ys.sort()\n    return ys\n",
]
FAILING = [
    ("    return xs[::-1]\n", "AssertionError: assert candidate([3, 1, 2]) == [1, 2, 3]"),
    ("    return sorted(xs, reverse=True)\n", "AssertionError: assert candidate([3, 1, 2]) == [1, 2, 3]"),
    ("    return list(set(xs))[1:]\n", "AssertionError: assert candidate([3, 1, 2]) == [1, 2, 3]"),
    ("    return [x * 2 for x in xs]\n", "AssertionError: assert candidate([3, 1, 2]) == [1, 2, 3]"),
]
HOSTILE = ("    # [bold red]not markup[/] \x1b[31mnot a colour\x1b[0m\n    return xs[1:]  # [link=x]x[/link]\n",
           "AssertionError: [red]assert[/red] candidate([3, 1, 2]) == [1, 2, 3]")
TIMEOUT = ("    while True:\n        xs = xs + [0]\n", "timed out after 3.0 s")
ERRORS = [
    ("    return helper(xs)\n", "NameError: name 'helper' is not defined",
     "Traceback (most recent call last):\n  File \"<sample>\", line 6, in sort_digits\n"
     "NameError: name 'helper' is not defined"),
    ("    return sorted(xs\n", "SyntaxError: '(' was never closed (line 6)",
     "  File \"<sample>\", line 6\n    return sorted(xs\n                 ^\nSyntaxError: '(' was never closed"),
]


def sample_rows(cid: int, rnd: int, problem: Problem, purpose: str, n: int, c: int, rng: random.Random,
                hostile: bool = False) -> tuple[list[dict], list[dict]]:
    """n samples of which c pass; the others mostly fail, some time out or error."""
    rows, verdicts = [], []
    outcomes = ["passed"] * c + ["failed"] * (n - c)
    for i in range(c, n):
        roll = rng.random()
        outcomes[i] = "timed out" if roll < 0.08 else "error" if roll < 0.2 else "failed"
    rng.shuffle(outcomes)
    for idx, status in enumerate(outcomes):
        stdout = stderr = ""
        if status == "passed":
            body, detail = PASSING[rng.randrange(len(PASSING))], ""
        elif status == "failed":
            body, detail = FAILING[rng.randrange(len(FAILING))]
            if hostile and idx == outcomes.index("failed"):
                body, detail = HOSTILE
                stdout = "debug: \x1b[2Jcleared?\n"
        elif status == "timed out":
            body, detail = TIMEOUT
        else:
            body, detail, stderr = ERRORS[rng.randrange(len(ERRORS))]
        output = f"```python\n{problem.prompt}{body}```\nThis function {status}."
        rows.append(dict(campaign=cid, round=rnd, task_id=problem.task_id, idx=idx, purpose=purpose, completion=body,
                         output=output, n_tokens=len(body.split()) * 3 + 5, norm_hash=f"h{zlib.crc32(body.encode()):08x}"))
        verdicts.append(dict(status=status, detail=detail, stdout=stdout, stderr=stderr,
                             duration=round(0.05 + rng.random() * (3.0 if status == "timed out" else 0.3), 3)))
    return rows, verdicts


def add_round_samples(store: Store, clock: Clock, cid: int, rnd: int, problems: list[tuple[Problem, str]],
                      counts: dict[str, tuple[int, int]], rng: random.Random, pending_after: int | None = None,
                      hostile_task: str | None = None) -> None:
    """Samples of one round; with `pending_after`, only that many are verified (the rest stay pending)."""
    verified = 0
    for p, split in problems:
        n, c = counts[p.task_id]
        rows, verdicts = sample_rows(cid, rnd, p, "train" if split == "train" else "eval", n, c, rng,
                                     hostile=p.task_id == hostile_task)
        clock.tick(0.5)
        ids = store.add_samples(rows)
        todo = []
        for sid, v in zip(ids, verdicts):
            if pending_after is None or verified < pending_after:
                todo.append((sid, v))
                verified += 1
        store.set_verdicts(todo)


def diversity_for(level: float, rng: random.Random, n_problems: int, n_samples: int) -> dict:
    """Round diversity in the engine's shape; `level` scales it (structural distinctness falls fastest)."""
    base = {"structural": 0.78, "lexical": 0.64, "distinct2": 0.55, "gap": 0.22, "structural_passed": 0.52,
            "lexical_passed": 0.47, "distinct2_passed": 0.41}
    out: dict = {"n_problems": n_problems, "n_samples": n_samples, "unparsable_share": 0.03}
    for k, v in base.items():
        scale = level ** 1.5 if k.startswith("structural") else level
        out[k] = round(v * scale * (1 + (rng.random() - 0.5) * 0.04), 4)
        out["n_" + k] = n_problems
    return out


def gauge_for(cur: dict, base: dict) -> dict:
    comps, parts = {}, []
    for k in COMPONENTS:
        value, b = cur[k], base[k]
        rel = 100.0 * value / b
        comps[k] = {"value": value, "round0": b, "relative": round(rel, 2), "in_gauge": k in IN_GAUGE, "note": ""}
        if k in IN_GAUGE:
            parts.append(min(rel, 150.0))
    return {"gauge": round(sum(parts) / len(parts), 2), "components": comps}


def collapse_for(gauges: list[dict]) -> dict:
    g = gauges[-1]["gauge"]
    comps = gauges[-1]["components"]
    worst = min(IN_GAUGE, key=lambda k: comps[k]["relative"])
    names = {"structural": "structural distinctness", "lexical": "lexical diversity", "gap": "pass@k - pass@1 gap"}
    describe = f"{names[worst]} {comps[worst]['value']:.2f} vs {comps[worst]['round0']:.2f} at round 0"
    if g < 50:
        return {"state": "collapse", "reason": f"gauge {g:.0f} < 50 (stop at 0.5 x round 0): {describe}"}
    if g < 70:
        return {"state": "warn", "reason": f"gauge {g:.0f} < 70 (warn at 0.7 x round 0): {describe}"}
    return {"state": "ok", "reason": f"gauge {g:.0f}"}


def round_metrics(rnd: int, problems: list[tuple[Problem, str]], history: list[dict[str, tuple[int, int]]],
                  ks: tuple[int, ...], gauges: list[dict], div: dict, training: dict | None) -> dict:
    counts = history[rnd]
    split = {p.task_id: s for p, s in problems}
    out: dict = {}
    transitions = {}
    for side in ("train", "heldout"):
        side_counts = {t: nc for t, nc in counts.items() if split[t] == side}
        summary = metrics.round_summary(side_counts, ks)
        summary.pop("pass_counts", None)
        out[side] = summary
        if rnd:
            prev = metrics.buckets({t: nc for t, nc in history[rnd - 1].items() if split[t] == side})
            transitions[side] = metrics.transitions(prev, metrics.buckets(side_counts))
    solved, unsolvable = metrics.solved_split(history[: rnd + 1])
    result = {
        **out,
        "transitions": transitions or None,
        "solved": {s: sum(1 for t in solved if split[t] == s) for s in ("train", "heldout")},
        "unsolvable": {s: sum(1 for t in unsolvable if split[t] == s) for s in ("train", "heldout")},
        "diversity": div,
        "gauge": gauges[-1],
        "collapse": collapse_for(gauges),
        "samples": {"total": sum(n for n, _ in counts.values()), "passed": sum(c for _, c in counts.values())},
        "throughput": {"samples_per_s": 1.9, "tokens_per_s": 142.0},
    }
    if training:
        result["training"] = training
    return result


def problem_stats_rows(problems: list[tuple[Problem, str]], counts: dict[str, tuple[int, int]]) -> list[dict]:
    return [dict(task_id=p.task_id, split=s, n=counts[p.task_id][0], c=counts[p.task_id][1],
                 bucket=metrics.bucket(*counts[p.task_id]), diversity={"structural": 0.5, "n": counts[p.task_id][0]})
            for p, s in problems]


def write_campaign(store: Store, clock: Clock, *, name: str, source: str, problems: list[tuple[Problem, str]],
                   profiles: dict[str, list[int]], n: int, rounds: int, done_rounds: int, rng: random.Random,
                   levels: list[float], ks: tuple[int, ...] = (1, 8), model: str = "smollm2-135m-instruct",
                   hostile_task: str | None = None) -> int:
    """A campaign whose rounds 0..done_rounds-1 are complete (samples, stats, metrics, events)."""
    cid = store.create_campaign(name, config_text(name, rounds, n, source, model, ks), f"campaigns/{name}.toml",
                                problems)
    store.update_campaign(cid, status="running", stage="sample", round=0, engine_pid=4242, engine_host="gpu-node-1",
                          heartbeat=clock())
    store.log(cid, "info", "engine started (pid 4242)")
    store.log(cid, "info", f"loading model {model}")
    history: list[dict[str, tuple[int, int]]] = []
    gauges: list[dict] = []
    base_div = None
    for rnd in range(done_rounds):
        store.start_round(cid, rnd, "sample" if rnd == 0 else "filter")
        timings: dict = {}
        training = None
        if rnd:
            clock.tick(0.2)
            timings["filter"] = 0.1
            kept = sum(min(4, c) for c in (profiles[p.task_id][rnd - 1] for p, s in problems if s == "train"))
            store.log(cid, "info", f"round {rnd}: training set of {kept} samples from "
                                   f"{sum(1 for p, s in problems if s == 'train' and profiles[p.task_id][rnd - 1])} problems")
            steps = max(1, math.ceil(kept * 2 / 8))
            for step in range(1, steps + 1):
                clock.tick(6.0)
                store.log_train_step(cid, rnd, step, round(1.4 * (0.82 ** step) + 0.1 * rnd_level_noise(rng), 4))
            timings["train"] = round(6.0 * steps, 1)
            training = {"examples": kept, "steps": steps, "final_loss": round(1.4 * 0.82 ** steps, 4),
                        "seconds": timings["train"]}
            store.log(cid, "info", f"round {rnd}: trained on {kept} samples, {steps} steps, final loss "
                                   f"{training['final_loss']:.3f}")
        counts = {p.task_id: (n, profiles[p.task_id][rnd]) for p, _ in problems}
        history.append(counts)
        add_round_samples(store, clock, cid, rnd, problems, counts, rng,
                          hostile_task=hostile_task if rnd == 0 else None)
        timings.update({"sample": round(45.0 + 10 * rnd, 1), "verify": 6.3, "metrics": 0.4})
        div = diversity_for(levels[rnd], rng, len(problems), n * len(problems))
        base_div = base_div or div
        gauges.append(gauge_for(div, base_div))
        store.set_problem_stats(cid, rnd, problem_stats_rows(problems, counts))
        m = round_metrics(rnd, problems, history, ks, gauges, div, training)
        clock.tick(1.0)
        store.update_round(cid, rnd, stage="done", finished=clock(), metrics=m, timings=timings)
        ksum = "  ".join(f"pass@{k} {m['train'][f'pass@{k}']:.3f}/{m['heldout'][f'pass@{k}']:.3f}" for k in ks)
        store.log(cid, "info", f"round {rnd}: {ksum} (train/held-out); solved "
                               f"{sum(m['solved'].values())}, unsolvable {sum(m['unsolvable'].values())}; "
                               f"diversity gauge {m['gauge']['gauge']:.0f}")
        if m["collapse"]["state"] != "ok":
            store.log(cid, "warning", f"round {rnd}: diversity {m['collapse']['state']}: {m['collapse']['reason']}")
        store.update_campaign(cid, round=rnd, stage="done", heartbeat=clock())
    return cid


def rnd_level_noise(rng: random.Random) -> float:
    return rng.random() - 0.5


def humaneval_problems(n_train: int, n_heldout: int, prefix: str = "HumanEval/") -> list[tuple[Problem, str]]:
    total = n_train + n_heldout
    heldout = {int((j + 0.5) * total / n_heldout) for j in range(n_heldout)}
    ids = [i * 3 + (i % 3) for i in range(total)]
    return [(make_problem(f"{prefix}{i}", i), "heldout" if j in heldout else "train") for j, i in enumerate(ids)]


TRAIN_PROFILES = [
    [8, 8, 8, 8], [8, 8, 8, 8], [5, 7, 8, 8], [1, 3, 5, 6], [2, 4, 6, 7], [1, 2, 4, 5], [2, 5, 8, 8],
    [1, 1, 2, 1], [1, 0, 0, 0], [0, 0, 1, 2], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0],
    [4, 5, 5, 6], [8, 7, 6, 6],
]
HELDOUT_PROFILES = [[0, 0, 0, 0], [1, 2, 2, 3], [3, 4, 4, 5], [8, 8, 8, 8], [0, 0, 1, 1], [2, 2, 3, 3]]


def seed_workspace(home: Path) -> dict[str, int]:
    """The three campaigns described in the module docstring; returns their ids by role."""
    home.mkdir(parents=True, exist_ok=True)
    clock = Clock(T0)
    with frozen(clock):
        store = Store(home / "sdtui.db")
        try:
            # #1: finished, 3 training rounds, diversity falling
            problems = humaneval_problems(16, 6)
            tr, ho = iter(TRAIN_PROFILES), iter(HELDOUT_PROFILES)
            profiles = {p.task_id: next(tr) if s == "train" else next(ho) for p, s in problems}
            finished = write_campaign(store, clock, name="humaneval-sd", source="humaneval", problems=problems,
                                      profiles=profiles, n=8, rounds=3, done_rounds=4, rng=random.Random(1),
                                      levels=[1.0, 0.86, 0.66, 0.58], hostile_task=problems[3][0].task_id)
            clock.tick(5)
            store.log(finished, "info", "campaign finished")
            store.update_campaign(finished, status="finished", stage="done", heartbeat=clock())

            # #2: running, round 1 verifying
            clock.t = NOW - 3 * 3600
            problems2 = [(make_problem(f"Mbpp/{11 + 3 * i}", i + 40), "heldout" if i % 4 == 3 else "train")
                         for i in range(14)]
            rng = random.Random(2)
            profiles2 = {p.task_id: [rng.choice([0, 0, 1, 1, 2, 3, 4]), 0] for p, _ in problems2}
            for p, _ in problems2:
                profiles2[p.task_id][1] = min(4, profiles2[p.task_id][0] + rng.choice([0, 0, 1, 2]))
            running = write_campaign(store, clock, name="mbpp-smoke", source="mbpp:data/mbpp.jsonl",
                                     problems=problems2, profiles=profiles2, n=4, rounds=2, done_rounds=1, rng=rng,
                                     levels=[1.0])
            store.start_round(running, 1, "filter")
            store.log(running, "info", "round 1: training set of 12 samples from 7 problems")
            for step in range(1, 4):
                clock.tick(5)
                store.log_train_step(running, 1, step, 1.2 - 0.2 * step)
            store.log(running, "info", "round 1: trained on 12 samples, 3 steps, final loss 0.600")
            store.update_round(running, 1, stage="verify", timings={"filter": 0.1, "train": 15.2, "sample": 31.0})
            counts = {p.task_id: (4, profiles2[p.task_id][1]) for p, _ in problems2}
            add_round_samples(store, clock, running, 1, problems2, counts, rng, pending_after=34)
            clock.t = NOW - 2
            store.update_campaign(running, status="running", stage="verify", round=1, heartbeat=clock())
            store.heartbeat(running, {"stage": "verify", "round": 1, "done": 34, "total": 56, "unit": "samples",
                                      "samples_per_s": 7.9, "eta_s": 2.8, "passed": 9, "verified": 34})

            # #3: engine lost during round 0's sampling
            clock.t = NOW - 5 * 3600
            problems3 = [(make_problem(f"HumanEval/{i}", i), "heldout" if i % 4 == 0 else "train") for i in range(40)]
            lost = store.create_campaign("qwen-gpu", config_text("qwen-gpu", 3, 8, "humaneval",
                                                                 "Qwen/Qwen2.5-Coder-1.5B-Instruct"),
                                         "campaigns/qwen-gpu.toml", problems3)
            store.log(lost, "info", "engine started (pid 5151)")
            store.log(lost, "info", "loading model Qwen/Qwen2.5-Coder-1.5B-Instruct")
            store.start_round(lost, 0, "sample")
            rng3 = random.Random(3)
            for p, split in problems3[:5]:
                rows, _ = sample_rows(lost, 0, p, "train" if split == "train" else "eval", 8, 2, rng3)
                store.add_samples(rows)
            clock.t = NOW - 4 * 3600
            store.update_campaign(lost, status="running", stage="sample", round=0, engine_pid=5151,
                                  engine_host="gpu-node-2", heartbeat=clock())
            store.heartbeat(lost, {"stage": "sample", "round": 0, "done": 40, "total": 320, "unit": "samples",
                                   "samples_per_s": 1.2, "tokens_per_s": 310.0, "eta_s": 233.0})
        finally:
            store.close()
    return {"finished": finished, "running": running, "lost": lost}


def seed_big(home: Path, n_problems: int = 200, rounds: int = 3, n: int = 100, seed: int = 7) -> int:
    """The benchmark's campaign: n_problems x rounds x n samples, finished."""
    home.mkdir(parents=True, exist_ok=True)
    clock = Clock(T0)
    rng = random.Random(seed)
    problems = [(make_problem(f"HumanEval/{i}", i), "heldout" if i % 4 == 3 else "train") for i in range(n_problems)]
    profiles = {}
    for p, _ in problems:
        share = rng.choice([0.0, 0.0, 0.05, 0.1, 0.2, 0.4, 0.7, 1.0])
        row = []
        for _ in range(rounds):
            row.append(max(0, min(n, int(round(share * n)))))
            share = min(1.0, share * rng.choice([1.0, 1.2, 1.5, 2.0])) if share else share
        profiles[p.task_id] = row
    with frozen(clock):
        store = Store(home / "sdtui.db")
        try:
            cid = write_campaign(store, clock, name="bench-200x3x100", source="humaneval", problems=problems,
                                 profiles=profiles, n=n, rounds=rounds - 1, done_rounds=rounds, rng=rng,
                                 levels=[1.0, 0.9, 0.8][:rounds] + [0.7] * max(0, rounds - 3), ks=(1, 10, 100))
            store.update_campaign(cid, status="finished", stage="done")
        finally:
            store.close()
    return cid
