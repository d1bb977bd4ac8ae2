"""Problem loaders and the deterministic train/held-out split."""

import json
from pathlib import Path

import pytest

from engine.errors import UserError
from engine.problems import load_problems, select, split

MBPP = Path(__file__).parent.parent.parent / "shared" / "data" / "mbpp.jsonl"


def test_humaneval_loads_all_164():
    problems = load_problems("humaneval")
    assert len(problems) == 164
    p = problems[0]
    assert p.task_id == "HumanEval/0" and p.entry_point == "has_close_elements" and p.has_check


@pytest.mark.skipif(not MBPP.exists(), reason="shared MBPP data not present")
def test_mbpp_builds_a_humaneval_like_prompt():
    problems = load_problems(f"mbpp:{MBPP}")
    assert len(problems) == 974
    p = problems[0]
    assert p.task_id == "Mbpp/1" and p.entry_point == "min_cost"
    assert p.prompt.startswith("def min_cost(cost, m, n):\n") and "minimum cost path" in p.prompt
    assert "tc[0][0]" not in p.prompt  # the reference body never leaks into the prompt
    assert not p.has_check and p.test.startswith("assert min_cost(")


def test_mbpp_from_users_path(tmp_path):
    row = {"task_id": 7, "text": "Add two numbers.", "code": "def add(a, b):\r\n  return a + b",
           "test_list": ["assert add(1, 2) == 3"], "test_setup_code": ""}
    f = tmp_path / "m.jsonl"
    f.write_text(json.dumps(row) + "\n")
    (p,) = load_problems(f"mbpp:{f}")
    assert p.task_id == "Mbpp/7" and p.prompt.startswith("def add(a, b):")


@pytest.mark.parametrize(
    "content, expected",
    [
        ("{not json}\n", "line 1: not valid JSON"),
        ('{"task_id": "a", "prompt": "p", "entry_point": "f"}\n', "missing field 'test'"),
        ('[1, 2]\n', "expected a JSON object"),
        ("", "holds no problems"),
        ('{"task_id": "a", "prompt": "p", "entry_point": "f", "test": "t"}\n' * 2, "appears twice"),
    ],
)
def test_malformed_problem_file_is_one_line(tmp_path, content, expected):
    f = tmp_path / "p.jsonl"
    f.write_text(content)
    with pytest.raises(UserError, match=expected) as err:
        load_problems(f"jsonl:{f}")
    assert "\n" not in str(err.value)


def test_missing_file_and_unknown_source(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_problems(f"jsonl:{tmp_path / 'missing.jsonl'}")
    with pytest.raises(UserError, match="unknown problem source"):
        load_problems("apps")
    with pytest.raises(UserError, match="needs a path"):
        load_problems("mbpp")


def test_select_and_split_are_deterministic():
    problems = load_problems("humaneval")
    short = select(problems, limit=20, order="shortest")
    assert len(short) == 20 and short == select(problems, limit=20, order="shortest")
    a = split(short, 0.25, seed=0)
    assert a == split(list(reversed(short)), 0.25, seed=0)
    assert sum(v == "heldout" for v in a.values()) == 5
    assert split(short, 0.25, seed=1) != a
    assert select(problems, task_ids=["HumanEval/3", "HumanEval/1"])[0].task_id == "HumanEval/3"
    with pytest.raises(UserError, match="not in the problem set"):
        select(problems, task_ids=["HumanEval/999"])
    explicit = split(short, 0.5, 0, heldout_ids=[short[0].task_id])
    assert [t for t, s in explicit.items() if s == "heldout"] == [short[0].task_id]
