"""Campaign TOML for tests: the toy problems with known replayed pass counts, and the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).parent / "data"


def replay_toml(name: str = "toy-replay", cap: int = 4, workers: int = 2) -> str:
    """Round 0 and 1 of the toy problems from tests/data/toy_replay.jsonl (pass counts are known)."""
    return f"""
name = "{name}"
seed = 3
rounds = 1
[model]
backend = "replay"
spec = "replay"
replay_file = "{DATA / 'toy_replay.jsonl'}"
[problems]
source = "jsonl:{DATA / 'toy_problems.jsonl'}"
heldout_ids = ["toy/max3"]
[sampling]
n = 4
batch_size = 8
[eval]
k = [1, 2]
[filter]
max_per_problem = {cap}
[verify]
workers = {workers}
timeout = 3.0
"""


def tiny_toml(model_dir: Path, name: str = "tiny", rounds: int = 2, max_new_tokens: int = 12) -> str:
    """The toy problems on the tiny random model. verified = false: a random model never passes,
    and the trainer must still run (SSD-style)."""
    return f"""
name = "{name}"
seed = 11
rounds = {rounds}
[model]
spec = "{model_dir}"
prompt_style = "chat"
threads = 1
[problems]
source = "jsonl:{DATA / 'toy_problems.jsonl'}"
heldout_ids = ["toy/max3"]
[sampling]
n = 2
max_new_tokens = {max_new_tokens}
batch_size = 2
[eval]
k = [1, 2]
[filter]
verified = false
max_per_problem = 2
[train]
epochs = 1
batch_size = 2
max_seq_len = 128
lora_r = 4
lora_alpha = 8
[verify]
workers = 1
"""


# toy/neg is unsolved at round 0 of the replay; its hinted re-samples mostly pass
HINTED_ROWS = ["    return -x\n", "    return -1 * x\n", "    return x\n", "    return -x\n"]
HINTS = "\n[hint]\nenabled = true\nsamples = 4\nmax_train_per_problem = 2\nweight = 0.5\n"


def hinted_replay_toml(tmp_path: Path, extra: str = HINTS, heldout: str = "toy/max3") -> str:
    """The replay campaign plus `extra` TOML (hint / budget sections), replaying a copy of the toy
    file with hinted rows for toy/neg (written to tmp_path)."""
    replay = tmp_path / "replay.jsonl"
    rows = (DATA / "toy_replay.jsonl").read_text()
    rows += "".join(json.dumps({"task_id": "toy/neg", "completion": c, "round": 0, "hinted": True}) + "\n"
                    for c in HINTED_ROWS)
    replay.write_text(rows)
    return replay_toml().replace(str(DATA / "toy_replay.jsonl"), str(replay)).replace('"toy/max3"', f'"{heldout}"') + extra


def run_replay_campaign(ws, tmp_path: Path, extra: str = HINTS, heldout: str = "toy/max3") -> int:
    """`hinted_replay_toml` run to the end in workspace `ws`; returns the campaign id."""
    from engine.config import parse_config
    from engine.runner import Engine, create_campaign
    from engine.store import Store

    text = hinted_replay_toml(tmp_path, extra, heldout)
    store = Store(ws.db_path)
    cid = create_campaign(store, parse_config(text), text, None)
    store.close()
    assert Engine(ws, cid).run() == "finished"
    return cid
