"""Plots for docs/results.md from campaigns in a workspace: pass@k per round (train and held-out,
with their 95% bootstrap intervals), the diversity gauge per round, and how many train problems
left the unsolvable set, one line per campaign.

    pip install "sdtui[plots]"
    python scripts/plot_results.py --home WORKSPACE --out docs/figures/experiments 3 4 5 6 7

Writes OUT.svg and, beside it, OUT.json: the exported reports (`sdtui export ID --format json`) the
figure was drawn from, so that every plotted number can be checked against its source.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def series(report: dict, side: str, key: str) -> tuple[list[int], list[float], list[tuple[float, float] | None]]:
    """(rounds, values, intervals) of one metric of a campaign report, measured rounds only."""
    rounds, values, cis = [], [], []
    for r in report["rounds"]:
        m = (r.get("metrics") or {}).get(side) or {}
        if m.get(key) is None:
            continue
        rounds.append(r["round"])
        values.append(100 * m[key])
        ci = (m.get("ci") or {}).get(key)
        cis.append((100 * ci[0], 100 * ci[1]) if ci else None)
    return rounds, values, cis


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("campaigns", nargs="+", type=int, help="campaign ids")
    ap.add_argument("--home", required=True, help="the workspace")
    ap.add_argument("--out", required=True, help="output path without extension (.svg and .json are written)")
    ap.add_argument("--k", default="pass@10", help="the pass@k shown beside pass@1")
    ap.add_argument("--png", action="store_true", help="also write OUT.png (a quick look in a terminal image viewer)")
    args = ap.parse_args()

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        sys.exit('plotting needs matplotlib: pip install "sdtui[plots]"')
    from engine.export import campaign_report
    from engine.store import Store
    from engine.workspace import Workspace

    store = Store(Workspace.resolve(args.home).db_path)
    reports = [campaign_report(store, cid) for cid in args.campaigns]
    panels = [("train", "pass@1"), ("heldout", "pass@1"), ("train", args.k), ("heldout", args.k)]
    fig, grid = plt.subplots(2, 3, figsize=(12, 7.2), constrained_layout=True)
    axes = [grid[0][0], grid[0][1], grid[1][0], grid[1][1], grid[0][2], grid[1][2]]
    for ax, (side, key) in zip(axes, panels):
        for i, rep in enumerate(reports):
            rounds, values, cis = series(rep, side, key)
            shift = [r + 0.06 * (i - (len(reports) - 1) / 2) for r in rounds]  # intervals side by side
            lo = [v - c[0] if c else 0 for v, c in zip(values, cis)]
            hi = [c[1] - v if c else 0 for v, c in zip(values, cis)]
            ax.errorbar(shift, values, yerr=[lo, hi], marker="o", capsize=3, label=rep["campaign"]["name"])
        ax.set_title(f"{key} {'held-out' if side == 'heldout' else side} (%)")
        ax.set_xlabel("round")
        ax.set_ylim(0, max(10.0, ax.get_ylim()[1]))  # an all-zero series stays readable
        ax.grid(alpha=0.3)
    ax = axes[4]
    for rep in reports:
        pts = [(r["round"], r["metrics"]["gauge"]["value"]) for r in rep["rounds"]
               if r.get("metrics") and (r["metrics"].get("gauge") or {}).get("value") is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=rep["campaign"]["name"])
    ax.axhline(100, color="grey", lw=0.8)
    ax.set_title("diversity gauge (round 0 = 100)")
    ax.set_xlabel("round")
    ax.grid(alpha=0.3)
    ax = axes[5]  # the edge of the unsolvable set (issue 8)
    for rep in reports:
        pts = [(r["round"], r["metrics"]["left_unsolved"]["train"]) for r in rep["rounds"]
               if r.get("metrics") and r["metrics"].get("left_unsolved")]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=rep["campaign"]["name"])
    of = max((r["metrics"]["left_unsolved"]["of"]["train"] for rep in reports for r in rep["rounds"]
              if r.get("metrics") and r["metrics"].get("left_unsolved")), default=0)
    ax.set_title(f"train problems unsolved at r0, solved (of {of})")
    ax.set_xlabel("round")
    ax.set_ylim(0, max(3, of))
    ax.grid(alpha=0.3)
    for ax in axes:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # rounds are whole
    axes[0].legend(fontsize=8)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out.with_suffix(".svg"))
    if args.png:
        fig.savefig(out.with_suffix(".png"), dpi=80)
    out.with_suffix(".json").write_text(json.dumps(reports, indent=1) + "\n")
    print(f"wrote {out.with_suffix('.svg')} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
