"""The real hf sampler and the real trainer through whole campaigns on a tiny random-weight llama,
and resume after SIGKILL: the resumed campaign stores exactly the samples of an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.config import parse_config
from engine.runner import Engine, create_campaign
from engine.store import Store
from engine.workspace import Workspace
from tests.campaign_files import tiny_toml

ROOT = Path(__file__).parent.parent


def tiny_config(model_dir: Path) -> str:
    return tiny_toml(model_dir)


def new_campaign(home: Path, text: str) -> tuple[Workspace, Store, int]:
    ws = Workspace.resolve(home)
    store = Store(ws.db_path)
    return ws, store, create_campaign(store, parse_config(text), text, None)


def test_two_round_campaign_on_tiny_model(tmp_path, tiny_model_dir):
    ws, store, cid = new_campaign(tmp_path / "ws", tiny_config(tiny_model_dir))
    assert Engine(ws, cid).run() == "finished"
    rounds = store.rounds(cid)
    assert [r["round"] for r in rounds] == [0, 1, 2] and all(r["stage"] == "done" for r in rounds)
    for rnd in (0, 1, 2):
        assert sum(n for n, _ in store.pass_counts(cid, rnd).values()) == 4 * 2
    for rnd in (1, 2):
        assert store.training_set(cid, rnd), "unverified filter keeps every sample"
        adapter = ws.checkpoint(cid, rnd)
        assert (adapter / "adapter_config.json").exists() and (adapter / "COMPLETE").exists()
        assert store.train_log(cid, rnd)
        assert rounds[rnd]["metrics"]["training"]["steps"] > 0
        assert set(rounds[rnd]["timings"]) >= {"filter", "train", "sample", "verify", "metrics"}
    assert store.count_samples(cid).get("pending", 0) == 0


def _engine(home: Path, cid: int, resume: bool) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "engine", "--home", str(home), "--campaign", str(cid)] + (["--resume"] if resume else [])
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _samples(store: Store, cid: int) -> list[tuple]:
    return [(s["round"], s["purpose"], s["task_id"], s["idx"], s["completion"], s["status"])
            for s in store.samples(cid)]


def _wait(proc: subprocess.Popen, timeout: float = 240) -> None:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err


def test_resume_after_sigkill_stores_the_same_samples(tmp_path, tiny_model_dir):
    text = tiny_config(tiny_model_dir)
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    _, store_a, cid_a = new_campaign(home_a, text)
    _wait(_engine(home_a, cid_a, resume=False))
    expected = _samples(store_a, cid_a)
    assert len(expected) == 3 * 4 * 2

    _, store_b, cid_b = new_campaign(home_b, text)
    # Kill points, each checked against the database: mid-sampling of round 0, during round 1's
    # training or sampling, and mid-round 2.
    kill_when = [
        lambda: len(store_b.samples(cid_b, rnd=0)) >= 3,
        lambda: (store_b.round(cid_b, 1) or {}).get("stage") in ("train", "sample"),
        lambda: len(store_b.samples(cid_b, rnd=2)) >= 1,
    ]
    killed = 0
    for i, condition in enumerate(kill_when):
        proc = _engine(home_b, cid_b, resume=i > 0)
        deadline = time.time() + 240
        while proc.poll() is None and not condition() and time.time() < deadline:
            time.sleep(0.01)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed += 1
            assert store_b.campaign(cid_b)["status"] == "running"  # what a killed engine leaves behind
    assert killed >= 2, "the campaign finished before the kill points were reached"
    _wait(_engine(home_b, cid_b, resume=True))
    assert store_b.campaign(cid_b)["status"] == "finished"
    got = _samples(store_b, cid_b)
    assert len(got) == len(set((r, p, t, i) for r, p, t, i, *_ in got)), "duplicates"
    assert got == expected
