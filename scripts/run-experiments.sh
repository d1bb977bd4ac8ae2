#!/usr/bin/env bash
# Run issue 7's experiment campaigns one after another, each in the foreground of this script
# (`sdtui run --headless`), in the workspace $SDTUI_HOME. Run it detached, e.g.
#   SDTUI_HOME=~/sdtui-exp nohup scripts/run-experiments.sh > experiments.log 2>&1 &
# A campaign the machine stopped is not restarted from scratch: `sdtui status` shows it as
# "engine lost", and `sdtui resume ID` continues it where it stopped.
# Two of these at once on one CPU: give each engine one torch thread (OMP_NUM_THREADS=1). On the
# 2-core VM an engine with 2 threads next to a 1-thread one sampled ~10x slower than with 1 thread
# (0.06 vs ~0.6 samples/s): OpenMP threads spin-wait for each other when the cores are shared.
set -euo pipefail
cd "$(dirname "$0")/.."
SDTUI="${SDTUI:-.venv/bin/sdtui}"  # may be a command with arguments, e.g. "python -m sdtui.cli"
for name in ${EXPERIMENTS:-verified restart-from-base accumulate unverified mbpp-transfer}; do
    echo "== $(date -u +%FT%TZ) $name"
    $SDTUI run --headless "campaigns/experiments/$name.toml"
done
echo "== $(date -u +%FT%TZ) done"
