"""Two engines on one CPU: does OpenMP's wait policy decide their speed?

    python bench/threads.py [--prompts 4] [--n 8] [--max-new-tokens 96]

Runs the engine's hf sampler (default model, chat prompts, the shortest HumanEval problems) in
fresh processes: one alone and two at once, with OpenMP's default wait policy or
OMP_WAIT_POLICY=PASSIVE, with torch's default thread count (one per core) or one thread each. Prints samples/s per process and the
ratios against "one alone, default policy", measured in the same run. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORKER = """
import json, sys, time
sys.path.insert(0, {root!r})
from engine.config import validate
from engine.problems import load_problems, select
from engine.sampler import SamplingParams, make_sampler
cfg = validate({{"name": "threads", "model": {{"backend": "hf"}}}})
sampler = make_sampler(cfg)
problems = select(load_problems("humaneval"), limit={prompts}, order="shortest")
params = SamplingParams(0.8, 0.95, {max_new_tokens})
sampler.generate(problems[:1], 1, params, seed=0)  # warm-up
print("ready", flush=True)
sys.stdin.readline()  # start together
t = time.perf_counter()
gens = sampler.generate(problems, {n}, params, seed=1)
print(json.dumps({{"seconds": time.perf_counter() - t, "samples": sum(len(g) for g in gens)}}), flush=True)
"""


def run(copies: int, passive: bool, args, threads: int = 0) -> list[float]:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("OMP_NUM_THREADS", None)
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    code = WORKER.format(root=str(ROOT), prompts=args.prompts, n=args.n, max_new_tokens=args.max_new_tokens)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=env) for _ in range(copies)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    rates = []
    for p in procs:
        r = json.loads(p.stdout.readline())
        rates.append(r["samples"] / r["seconds"])
        p.wait()
    return rates


def name(variant: tuple[int, bool, int]) -> str:
    copies, passive, threads = variant
    return (f"{copies} process{'es' if copies > 1 else ''}, wait policy {'PASSIVE' if passive else 'default'}, "
            f"{threads or 'default'} thread{'s' if threads != 1 else ''}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    args = ap.parse_args()
    results = {}
    # (processes at once, OMP_WAIT_POLICY=PASSIVE, torch threads: 0 = its default, one per core)
    for variant in ((1, False, 0), (1, True, 0), (2, False, 0), (2, True, 0), (2, False, 1)):
        started = time.time()
        results[variant] = run(variant[0], variant[1], args, variant[2])
        print(f"{name(variant)}: " + ", ".join(f"{r:.3f}" for r in results[variant]) + " samples/s each"
              + f"  ({time.time() - started:.0f} s)", flush=True)
    base = results[(1, False, 0)][0]
    for variant, rates in results.items():
        print(f"ratio {name(variant)}: {sum(rates) / base:.2f}x the lone default engine's samples/s in total, "
              f"slowest {min(rates) / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
