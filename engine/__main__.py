"""`python -m engine --home DIR --campaign ID [--resume]`: the engine process (started detached)."""

from __future__ import annotations

import argparse
import logging
import sys

from engine.errors import UserError
from engine.runner import Engine
from engine.workspace import Workspace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine")
    parser.add_argument("--home", required=True)
    parser.add_argument("--campaign", type=int, required=True)
    parser.add_argument("--resume", action="store_true", help="supersede commands left while no engine ran")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        status = Engine(Workspace.resolve(args.home), args.campaign, supersede_commands=args.resume).run()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    logging.info("engine exits: campaign %s", status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
