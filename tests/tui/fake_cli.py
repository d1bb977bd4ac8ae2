"""Stands in for `python -m sdtui` in the TUI tests: records its argv, answers like the real CLI.

`start PATH ...` prints a new campaign id (99), or exits 2 with one line on stderr when a --set
names a model containing "missing"; `resume ID` exits 0. Every call appends its argv (JSON) to $FAKE_CLI_LOG.
"""

import json
import os
import sys

args = sys.argv[1:]
with open(os.environ["FAKE_CLI_LOG"], "a", encoding="utf-8") as f:
    f.write(json.dumps(args) + "\n")
cmd = args[2] if args[:1] == ["--home"] else args[0]
if cmd == "start":
    if any(a.startswith("model.spec=") and "missing" in a for a in args):
        print("some warning first", file=sys.stderr)
        print('model "missing/model" not found: give an HF id, a local path or smollm2-135m-instruct',
              file=sys.stderr)
        sys.exit(2)
    print(99)
sys.exit(0)
