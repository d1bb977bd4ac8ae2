"""How much hinted re-samples copy the attempt their hint showed (issue 8's diagnostic).

    python scripts/hint_copying.py --home WORKSPACE ID [ID ...]

Per campaign and round: hinted samples whose hint showed code, how many passed, the share whose
normalized program equals the shown attempt (engine.diversity.norm_hash), and the mean and share
>= 0.5 of token-bigram Jaccard similarity to it.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.budget import shown_attempt  # noqa: E402
from engine.diversity import norm_hash, tokens  # noqa: E402
from engine.store import Store  # noqa: E402
from engine.workspace import Workspace  # noqa: E402


def similarity(a: str, b: str) -> float:
    """Token-bigram Jaccard similarity of two programs (1 = the same bigrams)."""
    ta, tb = tokens(a), tokens(b)
    x, y = set(zip(ta, ta[1:])), set(zip(tb, tb[1:]))
    return len(x & y) / len(x | y) if x | y else 1.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("campaigns", nargs="+", type=int)
    ap.add_argument("--home", required=True)
    args = ap.parse_args()
    store = Store(Workspace.resolve(args.home).db_path)
    print("| campaign | round | hinted samples showing code | passed | exact copies | mean similarity | similarity >= 0.5 |")
    print("|---|---|---|---|---|---|---|")
    for cid in args.campaigns:
        by_round: dict[int, list[tuple[bool, bool, float]]] = defaultdict(list)
        for s in store.samples(cid, purpose="hint", columns="round, hint, completion, status"):
            code = shown_attempt(s["hint"])
            if code is None:
                continue
            program = s["completion"].strip("\n")
            by_round[s["round"]].append((s["status"] == "passed", norm_hash(code) == norm_hash(program),
                                         similarity(code, program)))
        for rnd, rows in sorted(by_round.items()):
            n = len(rows)
            print(f"| {cid} | {rnd} | {n} | {sum(p for p, _, _ in rows)} | {sum(c for _, c, _ in rows) / n:.2f} | "
                  f"{sum(s for _, _, s in rows) / n:.2f} | {sum(s >= 0.5 for _, _, s in rows) / n:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
