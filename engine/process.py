"""Starting an engine as a detached process: it outlives the terminal, the SSH session and the TUI."""

from __future__ import annotations

import os
import subprocess
import sys

from engine.workspace import Workspace


def spawn_engine(ws: Workspace, cid: int, resume: bool = False) -> int:
    """Start `python -m engine` for a campaign in its own session; returns its pid.

    `start_new_session` (setsid) detaches it from the controlling terminal, so a hang-up does not
    reach it; its output goes to the campaign's log file beside the database.
    """
    ws.logs.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "engine", "--home", str(ws.home), "--campaign", str(cid)]
    if resume:
        cmd.append("--resume")
    with open(ws.log_file(cid), "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, cwd=os.getcwd())
    return proc.pid
