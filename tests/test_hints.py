"""Issue 8 through whole (replayed) campaigns: partial credit stored, hinted re-sampling of unsolved
train problems, adaptive sample budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.budget import Seen, allocate
from engine.runner import Engine
from engine.store import Store
from engine.workspace import Workspace
from tests.campaign_files import HINTS, run_replay_campaign



def run(tmp_path: Path, extra: str, heldout: str = "toy/max3") -> tuple[Engine, Store, int]:
    ws = Workspace.resolve(tmp_path / "ws")
    store = Store(ws.db_path)
    engine = Engine(ws, run_replay_campaign(ws, tmp_path, extra, heldout))
    return engine, store, engine.cid


@pytest.fixture(scope="module")
def hinted(tmp_path_factory):
    return run(tmp_path_factory.mktemp("hint"), HINTS)


def test_partial_credit_is_stored_per_sample(hinted):
    _, store, cid = hinted
    neg = {s["idx"]: s for s in store.samples(cid, rnd=0, task_id="toy/neg", purpose="train")}
    assert (neg[2]["asserts_passed"], neg[2]["asserts_total"]) == (2, 3)  # 0 - abs(x): fails neg(-2) == 2
    assert (neg[0]["asserts_passed"], neg[0]["asserts_total"]) == (0, 3)
    sq = store.samples(cid, rnd=0, task_id="toy/sq", purpose="train")
    assert all((s["asserts_passed"], s["asserts_total"]) == (2, 2) for s in sq)


def test_hint_samples_come_out_of_the_train_budget(hinted):
    _, store, cid = hinted
    # 4 samples x 3 train problems = 12, of which hint.samples = 4 are held back: 8 spread evenly
    assert {t: n for t, (n, _) in store.allocation(cid, 0, "sample").items()} == {"toy/add": 3, "toy/neg": 3, "toy/sq": 2}
    assert {t: n for t, (n, _) in store.allocation(cid, 0, "hint").items()} == {"toy/neg": 4}
    # the measurement ignores hinted samples: toy/neg stays unsolved at round 0
    assert store.pass_counts(cid, 0) == {"toy/add": (3, 1), "toy/neg": (3, 0), "toy/sq": (2, 2), "toy/max3": (4, 2)}
    assert store.pass_counts(cid, 0, hinted=True) == {"toy/neg": (4, 3)}
    # round 1 solved toy/neg without a hint: nothing to hint, the hint budget is unspent
    assert store.pass_counts(cid, 1, hinted=True) == {}


def test_hinted_prompt_carries_the_closest_attempts_failure(hinted):
    _, store, cid = hinted
    rows = store.samples(cid, rnd=0, purpose="hint")
    assert {r["task_id"] for r in rows} == {"toy/neg"} and len(rows) == 4
    hint = rows[0]["hint"]
    assert "assert neg(-2) == 2" in hint and "2 of the 3" in hint and "0 - abs(x)" in hint
    assert all(r["hint"] == hint for r in rows)


def test_hinted_passes_train_on_the_original_prompt_capped_and_weighted(hinted):
    engine, store, cid = hinted
    chosen = [store.sample(i) for i in store.training_set(cid, 1)]
    hinted_rows = [r for r in chosen if r["purpose"] == "hint"]
    assert len(hinted_rows) == 2 and all(r["status"] == "passed" for r in hinted_rows)  # capped at 2, deduped
    examples = engine.training_examples(1)
    neg = [e for e in examples if e.problem.task_id == "toy/neg"]
    assert len(neg) == 2 and all(e.weight == 0.5 and e.problem.hint == "" for e in neg)
    assert neg[0].problem == engine.by_id["toy/neg"]  # the original prompt, no hint
    assert all(e.weight == 1.0 for e in examples if e.problem.task_id != "toy/neg")


def test_round_metrics_count_hints_apart_and_what_left_the_unsolvable_set(hinted):
    _, store, cid = hinted
    r0, r1 = (r["metrics"] for r in store.rounds(cid))
    assert r0["hints"] == {"problems": 1, "samples": 4, "passed": 3, "problems_passed": 1}
    assert r0["unsolvable"]["train"] == 1  # a hinted pass is not a solve
    assert r0["left_unsolved"] == {"train": 0, "heldout": 0, "of": {"train": 1, "heldout": 0}}
    assert r1["left_unsolved"]["train"] == 1
    stats = {s["task_id"]: s for s in store.problem_stats(cid, 0)}
    assert (stats["toy/neg"]["hint_n"], stats["toy/neg"]["hint_c"]) == (4, 3)
    assert stats["toy/neg"]["credit"] == pytest.approx(2 / 3, abs=1e-3)
    assert stats["toy/sq"]["credit"] == 1.0


def test_held_out_problems_are_never_hinted(tmp_path):
    _, store, cid = run(tmp_path, "\n[hint]\nenabled = true\nsamples = 4\n", heldout="toy/neg")
    assert store.pass_counts(cid, 0)["toy/neg"] == (4, 0)  # unsolved, held out
    assert store.samples(cid, purpose="hint") == []
    assert all(r["purpose"] != "hint" for i in store.training_set(cid, 1) for r in [store.sample(i)])


def test_adaptive_budget_follows_the_previous_round(tmp_path):
    engine, store, cid = run(tmp_path, "\n[budget]\nadaptive = true\nmin_per_problem = 2\n")
    r0 = {t: n for t, (n, _) in store.allocation(cid, 0, "sample").items()}
    assert r0 == {"toy/add": 4, "toy/neg": 4, "toy/sq": 4}  # no earlier round: even
    alloc = store.allocation(cid, 1, "sample")
    stats = {s["task_id"]: s for s in store.problem_stats(cid, 0)}
    expected = allocate(["toy/add", "toy/neg", "toy/sq"], 12,
                        {t: Seen(s["n"], s["c"], s["credit"]) for t, s in stats.items()}, True, 2, 16)
    assert alloc == expected and sum(n for n, _ in alloc.values()) == 12
    assert alloc["toy/sq"][0] == 2 and "always" in alloc["toy/sq"][1]  # always solved: the floor
    assert alloc["toy/add"][0] >= alloc["toy/neg"][0] > alloc["toy/sq"][0]  # barely, nearly solved > always
    counts = store.pass_counts(cid, 1)
    assert all(counts[t][0] == n for t, (n, _) in alloc.items())  # what was sampled is what was planned
    assert store.rounds(cid)[1]["metrics"]["budget"] == {"train_samples": 12, "adaptive": True}


def test_exports_mark_hinted_samples_and_the_budget(hinted):
    from engine.export import campaign_report, export

    _, store, cid = hinted
    md = export(store, cid, "md")
    assert "| toy/neg | train | 0/3 +3h | 1/3 |" in md  # round 0: 0 of 3 unhinted, 3 hinted passes
    assert "## The unsolvable set and hints (train problems)" in md and "| 0 | 0/1 | 3/4 (1) | 12 | no |" in md
    csv_text = export(store, cid, "csv")
    assert csv_text.splitlines()[0].endswith("credit,hint_n,hint_c")
    assert "toy/neg,train,0,3,0,unsolved," in csv_text and ",0.6667,4,3\r\n" in csv_text
    neg = next(p for p in campaign_report(store, cid)["problems"] if p["task_id"] == "toy/neg")
    assert neg["rounds"][0]["allocated"] == 3 and neg["rounds"][0]["hint_allocated"] == 4


def test_a_budget_too_small_for_the_hints_is_refused_at_creation(tmp_path):
    from engine.config import parse_config
    from engine.errors import UserError
    from engine.runner import create_campaign
    from tests.campaign_files import replay_toml

    text = replay_toml() + "\n[hint]\nenabled = true\nsamples = 10\n"  # 12 - 10 = 2 for 3 train problems
    store = Store(tmp_path / "sdtui.db")
    with pytest.raises(UserError, match="lower hint.samples or raise budget.train_samples"):
        create_campaign(store, parse_config(text), text, None)
    assert store.campaigns() == []


class Crash(BaseException):
    """Stands for the engine being killed."""


def test_a_crash_in_the_hint_stage_resumes_to_the_same_samples(tmp_path, hinted):
    from engine.config import parse_config
    from engine.runner import create_campaign
    from tests.campaign_files import hinted_replay_toml

    _, reference, ref_cid = hinted
    ws = Workspace.resolve(tmp_path / "ws")
    text = hinted_replay_toml(tmp_path)
    store = Store(ws.db_path)
    cid = create_campaign(store, parse_config(text), text, None)

    def crash_once_hints_are_stored(progress: dict) -> None:
        if progress.get("stage") == "hint" and progress.get("done"):
            raise Crash()  # the hinted unit is stored, its verdicts are not all in

    with pytest.raises(Crash):
        Engine(ws, cid, on_progress=crash_once_hints_are_stored).run()
    assert store.samples(cid, purpose="hint") and store.round(cid, 0)["stage"] == "hint"
    assert Engine(ws, cid, supersede_commands=True).run() == "finished"
    columns = "round, task_id, idx, completion, status, hint, asserts_passed"
    assert store.samples(cid, purpose="hint", columns=columns) == reference.samples(ref_cid, purpose="hint", columns=columns)
    assert store.allocation(cid, 0, "hint") == reference.allocation(ref_cid, 0, "hint")
    assert store.count_samples(cid).get("pending", 0) == 0
