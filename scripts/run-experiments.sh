#!/usr/bin/env bash
# Run issue 7's experiment campaigns one after another, each in the foreground of this script
# (`sdtui run --headless`), in the workspace $SDTUI_HOME. Run it detached, e.g.
#   SDTUI_HOME=~/sdtui-exp nohup scripts/run-experiments.sh > experiments.log 2>&1 &
# A campaign the machine stopped is not restarted from scratch: `sdtui status` shows it as
# "engine lost", and `sdtui resume ID` continues it where it stopped.
# Two of these at once on one CPU: each engine splits the cores with the others it sees running
# (model.threads = 0; docs/performance.md, "Two engines on one CPU").
set -euo pipefail
cd "$(dirname "$0")/.."
SDTUI="${SDTUI:-.venv/bin/sdtui}"  # may be a command with arguments, e.g. "python -m sdtui.cli"
for name in ${EXPERIMENTS:-verified restart-from-base accumulate unverified mbpp-transfer}; do
    echo "== $(date -u +%FT%TZ) $name"
    $SDTUI run --headless "campaigns/experiments/$name.toml"
done
echo "== $(date -u +%FT%TZ) done"
