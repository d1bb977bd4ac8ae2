"""End to end: the wall time of a whole campaign (default campaigns/demo.toml) with the first working
version of sdtui (the baseline) and with this checkout, one after the other in the same run.

    python bench/e2e.py                      # baseline = ce28ccb, the first commit whose engine,
                                             # CLI and TUI ran a campaign end to end
    python bench/e2e.py --base REV --campaign campaigns/demo.toml

Each version runs from a clean `git worktree` of its commit (this checkout: of HEAD, so commit
first) with `python -m sdtui.cli run --headless`, in a workspace of its own, on this interpreter's
packages. Prints each version's wall time and time per stage (from its database), and the ratio.
Takes the sum of both campaigns' times: on the 2-core development VM about 15 + 35 minutes. Run it
on an otherwise idle machine: another engine on the same cores changes both figures.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRST_WORKING = "ce28ccb"


def run_version(rev: str, campaign: str, scratch: Path) -> dict:
    tree, home = scratch / f"tree-{rev}", scratch / f"home-{rev}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(tree), rev],
                   check=True, capture_output=True)
    try:
        started = time.time()
        # cwd = the worktree: `-m` puts it first on sys.path, so its engine/ and sdtui/ are the ones run
        proc = subprocess.run([sys.executable, "-m", "sdtui.cli", "--home", str(home), "run", "--headless", campaign],
                              cwd=tree, capture_output=True, text=True)
        wall = time.time() - started
        if proc.returncode != 0:
            sys.exit(f"{rev}: the campaign failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
        db = sqlite3.connect(home / "sdtui.db")
        stages: dict[str, float] = {}
        for (timings,) in db.execute("SELECT timings FROM rounds ORDER BY round"):
            for stage, seconds in (json.loads(timings) if timings else {}).items():
                stages[stage] = stages.get(stage, 0.0) + seconds
        status = db.execute("SELECT status FROM campaigns").fetchone()[0]
        db.close()
        return {"rev": rev, "wall_s": wall, "stages": stages, "status": status}
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default=FIRST_WORKING, help="the baseline commit")
    ap.add_argument("--campaign", default="campaigns/demo.toml", help="campaign file, relative to the repository")
    args = ap.parse_args()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()
    results = []
    with tempfile.TemporaryDirectory(prefix="sdtui-e2e-") as tmp:
        for rev in (args.base, head):
            r = run_version(rev, args.campaign, Path(tmp))
            results.append(r)
            stages = ", ".join(f"{k} {v:.0f}s" for k, v in r["stages"].items())
            print(f"{r['rev']:>8}: {r['wall_s'] / 60:6.1f} min wall, {r['status']}  ({stages})", flush=True)
    base, ours = results
    print(f"ratio: {base['wall_s'] / ours['wall_s']:.2f}x faster end to end than {args.base} ({args.campaign})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
