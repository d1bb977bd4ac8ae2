"""The `sdtui` command line: its contract (DESIGN section 4) and one-line errors with exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.campaign_files import replay_toml

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent


def sdtui(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SDTUI_HOME"}
    return subprocess.run([sys.executable, "-m", "sdtui", "--home", str(home), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, env=env)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


REPLAY = replay_toml(name="cli-replay", workers=1)


@pytest.mark.parametrize(
    "text, expected",
    [
        ('name = "x"\n[sampling\n', "broken TOML"),
        ('name = "x"\nsamples = 3\n', "unknown key 'samples'"),
        ('name = "x"\n[problems]\nsource = "jsonl:/nonexistent/p.jsonl"\n', "problem file not found"),
        ('name = "x"\n[model]\nspec = "/nonexistent/model-dir"\n', "model"),
        ('name = "x"\n[model]\nspec = "no-such-org/no-such-model-xyz"\n', "model"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, text, expected):
    home = tmp_path / "ws"
    res = sdtui(home, "start", str(write(tmp_path, text)))
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sdtui: error:") and expected in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def test_missing_config_and_unknown_campaign(tmp_path):
    res = sdtui(tmp_path / "ws", "start", str(tmp_path / "none.toml"))
    assert res.returncode == 2 and "campaign file not found" in res.stderr
    res = sdtui(tmp_path / "ws", "pause", "42")
    assert res.returncode == 2 and "no campaign 42" in res.stderr


def test_headless_run_status_export(tmp_path):
    home = tmp_path / "ws"
    res = sdtui(home, "run", str(write(tmp_path, REPLAY)), "--headless")
    assert res.returncode == 0, res.stderr
    status = json.loads(sdtui(home, "status", "--json").stdout)
    assert status[0]["status"] == "finished" and status[0]["pass@1_train"] == pytest.approx((3 / 4 + 1 / 4 + 1) / 3)
    report = json.loads(sdtui(home, "export", "1", "--format", "json").stdout)
    assert [r["round"] for r in report["rounds"]] == [0, 1]
    assert {p["task_id"] for p in report["problems"]} == {"toy/add", "toy/neg", "toy/sq", "toy/max3"}
    md = sdtui(home, "export", "1", "--format", "md").stdout
    assert "| toy/add | train | 1/4 | 3/4 |" in md
    csv = sdtui(home, "export", "1", "--format", "csv").stdout.splitlines()
    assert csv[0].startswith("task_id,split,round,n,c,bucket") and len(csv) == 1 + 8
    assert "| round | pass@1 train | pass@1 held-out |" in md and " [" in md  # values with their intervals
    res = sdtui(home, "run", str(write(tmp_path, REPLAY)), "--headless")  # the same campaign again: #2
    both = sdtui(home, "export", "1", "2", "--format", "md").stdout
    assert both.startswith("# Comparison: #1 ")
    assert all(f"| #{c} cli-replay | {r} | " in both for c in (1, 2) for r in (0, 1))  # round by round
    assert "paired bootstrap over problems" in both and "| #2 cli-replay | 1 | +0.000 [+0.000, +0.000] |" in both
    assert len(json.loads(sdtui(home, "export", "1", "2", "--format", "json").stdout)) == 2
    rows = sdtui(home, "export", "1", "2", "--format", "csv").stdout.splitlines()
    assert rows[0].startswith("campaign,task_id") and len(rows) == 1 + 16
    res = sdtui(home, "pause", "1")
    assert res.returncode == 2 and "finished" in res.stderr


def test_start_detached_then_pause_stop_enqueue_commands(tmp_path):
    from engine.store import Store

    home = tmp_path / "ws"
    res = sdtui(home, "start", str(write(tmp_path, REPLAY)), "--set", "rounds=0")
    assert res.returncode == 0, res.stderr
    cid = int(res.stdout.strip())
    store = Store(home / "sdtui.db")
    assert store.campaign(cid)["name"] == "cli-replay"
    # whether or not the tiny campaign already finished, the log file exists beside the database
    assert (home / "logs" / f"campaign-{cid}.log").exists()


def test_verify_command_writes_results(tmp_path):
    samples = tmp_path / "s.jsonl"
    rows = [{"task_id": "toy/add", "completion": "    return a + b\n"},
            {"task_id": "toy/add", "completion": "    return a - b\n"}]
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = sdtui(tmp_path / "ws", "verify", str(samples), "--problems", f"jsonl:{DATA / 'toy_problems.jsonl'}",
                "--workers", "1")
    assert res.returncode == 0, res.stderr
    out = [json.loads(line) for line in Path(f"{samples}_results.jsonl").read_text().splitlines()]
    assert [r["passed"] for r in out] == [True, False]
    assert out[0]["result"] == "passed" and out[1]["result"].startswith("failed")
    assert json.loads(res.stdout)["pass@1"] == pytest.approx(0.5)
    # `sdtui verify` must start fast: it never imports torch or transformers
    code = ("import sys; from sdtui.cli import main; "
            f"rc = main(['--home', {str(tmp_path / 'ws')!r}, 'verify', {str(samples)!r}, '--problems', "
            f"{'jsonl:' + str(DATA / 'toy_problems.jsonl')!r}, '--workers', '1']); "
            "assert rc == 0; assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
