"""Whole campaigns through the engine: known pass counts from the replay backend, metrics, dedupe."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from engine.config import parse_config
from engine.runner import Engine, create_campaign, plan_units
from engine.store import Store
from engine.workspace import Workspace
from tests.campaign_files import replay_toml

def run_campaign(tmp_path: Path, text: str) -> tuple[Store, int, str]:
    ws = Workspace.resolve(tmp_path / "ws")
    store = Store(ws.db_path)
    cfg = parse_config(text)
    cid = create_campaign(store, cfg, text, None)
    status = Engine(ws, cid).run()
    return store, cid, status


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    return run_campaign(tmp_path_factory.mktemp("replay"), replay_toml())


def test_replay_campaign_finishes_with_known_pass_counts(replayed):
    store, cid, status = replayed
    assert status == "finished"
    assert store.pass_counts(cid, 0) == {"toy/add": (4, 1), "toy/neg": (4, 0), "toy/sq": (4, 4), "toy/max3": (4, 2)}
    assert store.pass_counts(cid, 1) == {"toy/add": (4, 3), "toy/neg": (4, 1), "toy/sq": (4, 4), "toy/max3": (4, 2)}
    assert store.count_samples(cid).get("pending", 0) == 0


def test_round_metrics_match_hand_computed_values(replayed):
    store, cid, _ = replayed
    r0, r1 = (r["metrics"] for r in store.rounds(cid))
    # pass@1 = mean c/n over train problems; pass@2 = 1 - C(n-c,2)/C(n,2) averaged
    assert r0["train"]["pass@1"] == pytest.approx((1 / 4 + 0 + 1) / 3)
    assert r0["train"]["pass@2"] == pytest.approx((1 - math.comb(3, 2) / math.comb(4, 2) + 0 + 1) / 3)
    assert r0["heldout"]["pass@1"] == pytest.approx(0.5)
    assert r0["heldout"]["pass@2"] == pytest.approx(1 - 1 / 6)
    assert r1["train"]["pass@1"] == pytest.approx((3 / 4 + 1 / 4 + 1) / 3)
    assert r0["train"]["buckets"] == {"unsolved": 1, "barely": 1, "often": 0, "always": 1}
    assert r1["train"]["buckets"] == {"unsolved": 0, "barely": 1, "often": 1, "always": 1}
    assert r0["transitions"] is None
    t = r1["transitions"]["train"]
    assert t["barely"]["often"] == 1 and t["unsolved"]["barely"] == 1 and t["always"]["always"] == 1
    assert sum(sum(row.values()) for row in t.values()) == 3
    assert r0["solved"] == {"train": 2, "heldout": 1} and r0["unsolvable"] == {"train": 1, "heldout": 0}
    assert r1["solved"] == {"train": 3, "heldout": 1} and r1["unsolvable"] == {"train": 0, "heldout": 0}
    assert r0["gauge"]["value"] == pytest.approx(100.0)
    assert r0["collapse"]["state"] == "ok"


def test_training_set_keeps_passing_deduped_train_samples(replayed):
    store, cid, _ = replayed
    kept = [store.sample(i) for i in store.training_set(cid, 1)]
    # add: idx 0 passes; sq: "x * x", "x * x", "x ** 2", "x*x" -> two distinct programs; neg none; max3 held out
    assert sorted((s["task_id"], s["idx"]) for s in kept) == [("toy/add", 0), ("toy/sq", 0), ("toy/sq", 2)]
    assert all(s["status"] == "passed" and s["round"] == 0 for s in kept)


def test_per_problem_stats_and_events(replayed):
    store, cid, _ = replayed
    stats = {(r["round"], r["task_id"]): r for r in store.problem_stats(cid)}
    assert stats[(0, "toy/add")]["bucket"] == "barely" and stats[(1, "toy/add")]["bucket"] == "often"
    assert stats[(0, "toy/max3")]["split"] == "heldout"
    texts = [e["text"] for e in store.events(cid, limit=100)]
    assert any("campaign finished" in t for t in texts)


def test_cap_per_problem(tmp_path):
    store, cid, _ = run_campaign(tmp_path, replay_toml(cap=1))
    kept = [store.sample(i) for i in store.training_set(cid, 1)]
    by_task = sorted((s["task_id"], s["idx"]) for s in kept)
    # one per problem; for sq a seeded pick among its two distinct passing programs (idx 0 and 2)
    assert by_task[0] == ("toy/add", 0) and by_task[1] in (("toy/sq", 0), ("toy/sq", 2)) and len(by_task) == 2


def test_plan_units_cover_every_sample_once():
    from engine.problems import Problem

    probs = [Problem(f"t{i}", "x" * (i % 3), "f", "") for i in range(7)]
    for n, batch in ((4, 8), (8, 8), (20, 8), (3, 16)):
        units = plan_units(probs, "train", n, batch)
        keys = [(p.task_id, u.start + j) for u in units for p in u.problems for j in range(u.count)]
        assert sorted(keys) == sorted((p.task_id, j) for p in probs for j in range(n))
        assert all(len(u.problems) * u.count <= max(batch, n if n < batch else batch) for u in units)


def test_heldout_source_keeps_train_and_test_problems_apart(tmp_path):
    from engine.errors import UserError

    mbpp = Path(__file__).resolve().parents[2] / "shared" / "data" / "mbpp.jsonl"
    toy = Path(__file__).resolve().parent / "data" / "toy_problems.jsonl"
    ws = Workspace.resolve(tmp_path / "ws")
    store = Store(ws.db_path)
    text = f'name = "t"\n[problems]\nsource = "jsonl:{toy}"\nheldout_source = "humaneval"\nheldout_limit = 3\norder = "shortest"\n'
    cid = create_campaign(store, parse_config(text), text, None)
    sides = {p.task_id: s for p, s in store.problems(cid)}
    assert {t for t, s in sides.items() if s == "heldout"} == {"HumanEval/41", "HumanEval/53", "HumanEval/23"}
    assert all(s == "train" for t, s in sides.items() if not t.startswith("HumanEval/"))
    same = f'name = "t"\n[problems]\nsource = "humaneval"\nheldout_source = "humaneval"\n'
    with pytest.raises(UserError, match="shares task ids"):
        create_campaign(store, parse_config(same), same, None)
    if mbpp.exists():  # the MBPP -> HumanEval transfer experiment's shape
        text = f'name = "t"\n[problems]\nsource = "mbpp:{mbpp}"\nlimit = 4\nheldout_source = "humaneval"\nheldout_limit = 2\n'
        cid = create_campaign(store, parse_config(text), text, None)
        assert [s for _, s in store.problems(cid)] == ["train"] * 4 + ["heldout"] * 2


def test_a_stop_interrupts_the_unit_being_sampled_and_resume_redoes_it(tmp_path, replayed):
    """A stop that arrives while a unit is generating ends it at once (the sampler's tick); nothing of
    the unit is stored, and the resumed campaign stores exactly what an uninterrupted one did."""
    from engine.backends.replay import ReplaySampler

    ws = Workspace.resolve(tmp_path / "ws")
    store = Store(ws.db_path)
    text = replay_toml()
    cid = create_campaign(store, parse_config(text), text, None)
    real = ReplaySampler.generate
    calls = []

    def generate(self, *args, **kwargs):  # the second unit: a stop comes in while it generates
        calls.append(1)
        if len(calls) == 2:
            store.enqueue(cid, "stop")
            self.tick()
        return real(self, *args, **kwargs)

    ReplaySampler.generate = generate
    try:
        assert Engine(ws, cid).run() == "stopped"
    finally:
        ReplaySampler.generate = real
    stored = store.samples(cid)
    first_unit = {s["task_id"] for s in stored}
    assert stored and len(first_unit) < 4  # the first unit only: the interrupted one left nothing
    assert Engine(ws, cid, supersede_commands=True).run() == "finished"
    ref_store, ref_cid, _ = replayed
    key = lambda s: (s["round"], s["task_id"], s["idx"], s["purpose"], s["completion"], s["status"])
    assert sorted(map(key, store.samples(cid))) == sorted(map(key, ref_store.samples(ref_cid)))


def test_gains_by_round_0_bucket(replayed):
    """Issue 7's question (do barely-solved problems gain most?) from the stored counts."""
    from engine.export import campaign_report, export

    store, cid, _ = replayed
    table = campaign_report(store, cid)["by_round_0_bucket"]
    assert table["barely"]["problems"] == 1 and table["barely"]["mean_share"] == {0: 0.25, 1: 0.75}
    assert table["barely"]["to"][1] == {"unsolved": 0, "barely": 0, "often": 1, "always": 0}
    assert table["unsolved"]["to"][1]["barely"] == 1 and table["often"]["problems"] == 0
    md = export(store, cid, "md")
    assert "| barely | 1 | 0.250 | 0.750 | +0.500 |" in md
    assert "| unsolved | 0 / 1 / 0 / 0 |" in md


def test_comparison_gives_paired_changes(replayed):
    from engine.export import export_many

    store, cid, _ = replayed
    md = export_many(store, [cid, cid], "md")
    # round 0 -> 1 on the train problems: add 1/4 -> 3/4, neg 0 -> 1/4, sq 4/4 -> 4/4: +0.25 pass@1, paired
    assert "| #1 toy-replay | 1 | +0.250 [+0.000, +0.500] |" in md
    assert "Minus #1 toy-replay at the same round, paired by problem" in md
    assert "| #1 toy-replay | 1 | +0.000 [+0.000, +0.000] |" in md  # a campaign against itself


def test_comparison_groups_every_campaign_by_the_first_ones_round_0_buckets():
    """A redraw of round 0 (no training) next to a trained campaign: both are grouped by the first
    campaign's round-0 buckets, so the redraw's row shows the regression to the mean that the
    trained round's gain is read against."""
    from engine.export import _by_first_buckets
    from engine.metrics import bucket

    def report(cid: int, passes: dict[int, list[int]]) -> dict:
        return {"campaign": {"id": cid, "name": f"c{cid}"},
                "rounds": [{"round": r, "metrics": {"train": {}}} for r in passes],
                "problems": [{"task_id": f"t{i}", "split": "train",
                              "rounds": {r: {"n": 10, "c": c[i], "bucket": bucket(10, c[i])} for r, c in passes.items()}}
                             for i in range(4)]}

    trained = report(1, {0: [1, 2, 0, 5], 1: [6, 8, 0, 7]})  # t0, t1 barely; t2 unsolved; t3 often
    redraw = report(2, {0: [3, 2, 1, 4]})
    lines = _by_first_buckets([trained, redraw])
    assert "| campaign | round | unsolved (1) | barely (2) | often (1) |" in lines
    assert "| #1 c1 | 1 | +0.000 [+0.000, +0.000] | +0.550 [+0.500, +0.600] | +0.200 [+0.200, +0.200] |" in lines
    assert "| #2 c2 | 0 | +0.100 [+0.100, +0.100] | +0.100 [+0.000, +0.200] | -0.100 [-0.100, -0.100] |" in lines
    assert not any(line.startswith("| #1 c1 | 0 |") for line in lines)  # the reference against itself


def test_comparison_pairs_campaigns_at_a_round_both_measured():
    """A campaign still running (measured up to round 1) against a finished one (round 2) is compared
    at round 1, not its round 1 against the other's round 2; finished ones at every round after 0."""
    from engine.export import _versus_first

    def report(cid: int, passes: dict[int, int]) -> dict:
        return {"campaign": {"id": cid, "name": f"c{cid}"},
                "rounds": [{"round": r, "metrics": {"train": {}}} for r in passes],
                "problems": [{"task_id": f"t{i}", "split": "train",
                              "rounds": {r: {"n": 1, "c": int(i < c)} for r, c in passes.items()}} for i in range(4)]}

    finished, running = report(1, {0: 1, 1: 2, 2: 4}), report(2, {0: 1, 1: 2})
    lines = _versus_first([finished, running], ["pass@1"], ["pass@1 train", "pass@1 held-out"])
    assert "| #2 c2 | 1 | +0.000 [+0.000, +0.000] | - |" in lines  # round 2 would say -0.500
    assert not any(line.startswith(("| #2 c2 | 0 |", "| #2 c2 | 2 |")) for line in lines)
    lines = _versus_first([finished, report(3, {0: 1, 1: 1, 2: 3})], ["pass@1"], ["pass@1 train", "pass@1 held-out"])
    assert [line.split(" | ")[1] for line in lines if line.startswith("| #3")] == ["1", "2"]  # every round after 0
    lines = _versus_first([finished, report(4, {0: 2})], ["pass@1"], ["pass@1 train", "pass@1 held-out"])
    assert "| #4 c4 | 0 | +0.250 [+0.000, +0.750] | - |" in lines  # a redraw of round 0: round 0 it is
