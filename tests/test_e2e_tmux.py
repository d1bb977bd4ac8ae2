"""End to end, as a person over SSH would: a real detached engine on a tiny campaign, the TUI in
tmux driven by keys, and the database checked after each action."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.store import Store, engine_alive
from tests.campaign_files import tiny_toml

ROOT = Path(__file__).parent.parent

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def screen(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def wait_for(condition, what: str, timeout: float = 60, session: str | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f"; screen:\n{screen(session)}" if session else ""))


def open_tui(session: str, home: Path) -> None:
    env = f"cd {ROOT} && TERM=xterm-256color {sys.executable} -m sdtui --home {home}"
    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30", env)


@pytest.fixture
def session():
    name = f"sdtui-e2e-{os.getpid()}"
    yield name
    subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def test_pause_resume_quit_reattach_stop(tmp_path, tiny_model_dir, session):
    home = tmp_path / "ws"
    config = tmp_path / "tiny.toml"
    # Enough rounds that the campaign is still running while we press keys, however slowly the TUI
    # opens on a loaded machine (30 rounds, ~1 s each, once finished first); the test stops it.
    config.write_text(tiny_toml(tiny_model_dir, name="e2e", rounds=300, max_new_tokens=24))
    res = subprocess.run([sys.executable, "-m", "sdtui", "--home", str(home), "start", str(config)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    cid = int(res.stdout.strip())
    store = Store(home / "sdtui.db")
    wait_for(lambda: store.campaign(cid)["status"] == "running" and engine_alive(store.campaign(cid)), "engine start")

    open_tui(session, home)
    wait_for(lambda: "e2e" in screen(session) and "running" in screen(session), "campaign list", session=session)
    tmux("send-keys", "-t", session, "Enter")
    wait_for(lambda: "#1 e2e" in screen(session), "dashboard", session=session)

    tmux("send-keys", "-t", session, "p")
    wait_for(lambda: store.campaign(cid)["status"] == "paused", "engine paused", session=session)
    assert [c["verb"] for c in store.commands(cid)] == ["pause"]
    wait_for(lambda: "paused" in screen(session), "paused shown", session=session)
    samples_when_paused = sum(store.count_samples(cid).values())
    time.sleep(2)
    assert sum(store.count_samples(cid).values()) == samples_when_paused, "a paused engine made samples"

    tmux("send-keys", "-t", session, "r")
    wait_for(lambda: store.campaign(cid)["status"] == "running", "engine resumed", session=session)
    wait_for(lambda: sum(store.count_samples(cid).values()) > samples_when_paused, "sampling again", session=session)

    # Quitting the TUI leaves the engine running; a new TUI re-attaches to it.
    tmux("send-keys", "-t", session, "q")
    wait_for(lambda: subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode != 0,
             "TUI exit")
    time.sleep(1)
    assert engine_alive(store.campaign(cid)) and store.campaign(cid)["status"] == "running"
    open_tui(session, home)
    wait_for(lambda: "running" in screen(session), "re-attached", session=session)

    # Stop asks first; "n" writes nothing, "y" stops the engine with its state kept.
    tmux("send-keys", "-t", session, "x")
    wait_for(lambda: "(y)" in screen(session), "confirmation", session=session)
    tmux("send-keys", "-t", session, "n")
    time.sleep(1)
    assert [c["verb"] for c in store.commands(cid)] == ["pause", "resume"]
    tmux("send-keys", "-t", session, "x")
    wait_for(lambda: "(y)" in screen(session), "confirmation", session=session)
    tmux("send-keys", "-t", session, "y")
    wait_for(lambda: store.campaign(cid)["status"] == "stopped", "engine stopped", timeout=90, session=session)
    wait_for(lambda: "stopped" in screen(session), "stopped shown", session=session)
    assert [c["verb"] for c in store.commands(cid)] == ["pause", "resume", "stop"]
    assert all(c["acked"] for c in store.commands(cid))
