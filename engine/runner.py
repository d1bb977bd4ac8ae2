"""The engine: runs one campaign's round loop, resumably, steered by `commands` rows.

Round 0 samples the base model on every problem and measures it. Each later round r:

    filter   keep round r-1's passing train samples (deduped, capped)   -> training_sets r
    train    LoRA SFT on them                                          -> checkpoints/<id>/<r>
    sample   model r's samples: train problems per the round's budget  -> allocations, samples (pending)
             (engine/budget.py), held-out problems eval.n each
    verify   run each against its tests (overlaps with sampling)       -> samples, status, partial credit
    hint     (hint.enabled) re-sample unsolved train problems with a   -> allocations, samples (purpose hint)
             hint from their closest attempt, and verify those
    metrics  pass@k, buckets, transitions, diversity, gauge, collapse  -> rounds.metrics

The train-problem samples of model r are both its measurement and the next round's training
pool, so each model is sampled once (DESIGN.md sampled model r-1 again for training). Every
stage records its work as it finishes; a restarted engine skips what is stored and redoes only
the unit that was cut off, and sampling seeds derive from (campaign seed, round, purpose, unit),
so a killed-and-resumed campaign stores the same samples as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import itertools
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from engine import budget, cores, diversity, metrics
from engine.config import CampaignConfig, parse_config
from engine.errors import UserError
from engine.filter import select_training
from engine.problems import Problem, load_problems, select, split
from engine.store import Store, engine_alive
from engine.workspace import Workspace

log = logging.getLogger("sdtui.engine")

STAGES = ("filter", "train", "sample", "verify", "hint", "metrics", "done")
HEARTBEAT_EVERY_S = 1.0


class Stopped(Exception):
    """A stop command (or the collapse policy) ended the run: between units, or mid-unit via the sampler's tick."""


@dataclass(frozen=True)
class Unit:
    """One resumable piece of sampling: `count` samples from index `start` for each problem."""

    purpose: str  # train | eval | hint
    problems: tuple[Problem, ...]
    start: int
    count: int


def plan_units(problems: list[Problem], purpose: str, n: int | Mapping[str, int], batch_size: int) -> list[Unit]:
    """Cut sampling into units of about `batch_size` sequences, problems of similar length together.

    `n`: samples per problem, or task_id -> samples (an allocation; problems given 0 are skipped).
    Problems with the same count share units. The plan depends only on the campaign's problems,
    config and stored allocation, so a resumed engine plans the same units and skips those stored.
    """
    counts = n if isinstance(n, Mapping) else {p.task_id: n for p in problems}
    ordered = sorted((p for p in problems if counts.get(p.task_id, 0) > 0),
                     key=lambda p: (counts[p.task_id], len(p.prompt), p.task_id))
    units: list[Unit] = []
    for k, group in itertools.groupby(ordered, key=lambda p: counts[p.task_id]):
        same = list(group)
        if k >= batch_size:
            units += [Unit(purpose, (p,), s, min(batch_size, k - s)) for p in same for s in range(0, k, batch_size)]
        else:
            per_unit = max(1, batch_size // k)
            units += [Unit(purpose, tuple(same[i : i + per_unit]), 0, k) for i in range(0, len(same), per_unit)]
    return units


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from any parts, stable across processes and Python versions."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "big") >> 1


def check_budget(cfg: CampaignConfig, n_train: int) -> int:
    """The ordinary train samples of a round (the budget less the hinted ones); UserError when they
    cannot give every train problem one sample."""
    total = (cfg.budget.train_samples or cfg.sampling.n * n_train) - (cfg.hint.samples if cfg.hint.enabled else 0)
    if total < n_train:
        raise UserError(f"budget: {total} ordinary samples a round for {n_train} train problems once hint.samples "
                        "are taken; lower hint.samples or raise budget.train_samples")
    return total


def create_campaign(store: Store, cfg: CampaignConfig, config_text: str, config_path: str | None) -> int:
    """Load and split the campaign's problems and store the new campaign; bad input raises UserError."""
    problems = load_problems(cfg.problems.source)
    chosen = select(problems, cfg.problems.task_ids, cfg.problems.limit, cfg.problems.order)
    if not chosen:
        raise UserError("problems: the selection is empty; widen problems.limit or problems.task_ids")
    if cfg.problems.heldout_source:
        held = select(load_problems(cfg.problems.heldout_source), limit=cfg.problems.heldout_limit,
                      order=cfg.problems.order)
        clash = {p.task_id for p in chosen} & {p.task_id for p in held}
        if clash:
            raise UserError(f"problems.heldout_source shares task ids with problems.source ({sorted(clash)[0]!r}); "
                            "use two different problem sets")
        rows = [(p, "train") for p in chosen] + [(p, "heldout") for p in held]
        check_budget(cfg, len(chosen))
        return store.create_campaign(cfg.name, config_text, config_path, rows)
    ids = {p.task_id for p in chosen}
    unknown = [t for t in cfg.problems.heldout_ids if t not in ids]
    if unknown:
        raise UserError(f"problems.heldout_ids: {unknown[0]!r} is not among the chosen problems; fix the id")
    sides = split(chosen, cfg.problems.heldout_fraction, cfg.problems.split_seed, cfg.problems.heldout_ids)
    if "train" not in sides.values():
        raise UserError("problems: no train problems left after the split; lower problems.heldout_fraction")
    check_budget(cfg, sum(1 for s in sides.values() if s == "train"))
    return store.create_campaign(cfg.name, config_text, config_path, [(p, sides[p.task_id]) for p in chosen])


class Engine:
    """Runs a stored campaign to the end (or until stopped). One per campaign, one process."""

    def __init__(self, ws: Workspace, cid: int, on_progress: Callable[[dict], None] | None = None,
                 supersede_commands: bool = False) -> None:
        self.ws = ws
        self.cid = cid
        self.store = Store(ws.db_path)
        row = self.store.campaign(cid)
        if row is None:
            raise UserError(f"no campaign {cid} in {ws.db_path}; `sdtui status` lists them")
        self.cfg = parse_config(row["config"], f"campaign {cid}")
        self.problems = self.store.problems(cid)
        self.by_id = {p.task_id: p for p, _ in self.problems}
        self.split = {p.task_id: s for p, s in self.problems}
        self.on_progress = on_progress
        self.progress: dict = {}
        self.stop_after_round = False
        self.supersede_commands = supersede_commands
        self.sampler = None
        self.verifier = None
        self.in_flight: dict[Future, int] = {}
        self._hb_stop = threading.Event()
        self.registration: cores.Registration | None = None

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> str:
        """Run to the end; returns the final status (finished | stopped | failed)."""
        row = self.store.campaign(self.cid)
        if row["status"] == "finished":
            return "finished"
        if row.get("engine_pid") not in (None, os.getpid()) and engine_alive(row):
            raise UserError(f"campaign {self.cid} already has a running engine (pid {row['engine_pid']})")
        if self.supersede_commands:
            # Commands left while no engine ran (a stop before this resume) must not act now.
            for cmd in self.store.open_commands(self.cid):
                self.store.ack(cmd["id"], "superseded by resume")
        self.store.update_campaign(self.cid, status="running", engine_pid=os.getpid(),
                                   engine_host=socket.gethostname(), error=None)
        self.store.heartbeat(self.cid)
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        heartbeat.start()
        self.registration = cores.register()  # other engines on this machine count this one
        self.event("info", f"engine started (pid {os.getpid()})")
        status = "failed"
        try:
            from engine.verify import Verifier  # before the model loads: workers fork from a small process

            self.verifier = Verifier(workers=self.cfg.verify.workers, timeout=self.cfg.verify.timeout,
                                     require_isolation=self.cfg.verify.require_isolation)
            for warning in getattr(self.verifier, "warnings", []):
                self.event("warning", f"verifier: {warning}")
            for rnd in range(self.cfg.rounds + 1):
                self.run_round(rnd)
                if rnd < self.cfg.rounds and self.stop_after_round:
                    raise Stopped(f"stopped after round {rnd}")
            status = "finished"
            self.event("info", "campaign finished")
        except Stopped as stop:
            status = "stopped"
            self.event("info", str(stop))
        except UserError as e:
            self.store.update_campaign(self.cid, error=str(e))
            self.event("error", str(e))
            raise
        except BaseException as e:
            self.store.update_campaign(self.cid, error=f"{type(e).__name__}: {e}")
            self.event("error", f"engine failed: {type(e).__name__}: {e}")
            raise
        finally:
            self._hb_stop.set()
            heartbeat.join(timeout=5)
            if self.registration is not None:
                self.registration.close()
            self.store.update_campaign(self.cid, status=status, progress={})
            self.store.heartbeat(self.cid)
            if self.verifier is not None:
                self.verifier.close()
            if self.sampler is not None:
                self.sampler.close()
        return status

    def _heartbeat_loop(self) -> None:
        # Its own connection: the main thread may sit in a long generate() or training step.
        store = Store(self.ws.db_path)
        try:
            while not self._hb_stop.wait(HEARTBEAT_EVERY_S):
                store.heartbeat(self.cid, dict(self.progress))
        finally:
            store.close()

    def event(self, level: str, text: str) -> None:
        getattr(log, "warning" if level == "warning" else "error" if level == "error" else "info")(text)
        self.store.log(self.cid, level, text)

    def set_progress(self, **fields) -> None:
        self.progress = {**self.progress, **fields}
        if self.on_progress:
            self.on_progress(dict(self.progress))

    # ------------------------------------------------------------------ commands
    def check_commands(self) -> None:
        """Act on pending commands; called between units. Blocks while paused."""
        paused = False
        while True:
            for cmd in self.store.open_commands(self.cid):
                verb = cmd["verb"]
                if verb == "stop":
                    self.store.ack(cmd["id"], "stopping")
                    raise Stopped("stopped by command")
                if verb == "stop_after_round":
                    self.stop_after_round = True
                    self.store.ack(cmd["id"], "will stop after this round")
                    self.event("info", "will stop after the current round")
                elif verb == "pause":
                    self.store.ack(cmd["id"], "paused" if not paused else "already paused")
                    if not paused:
                        paused = True
                        self.store.update_campaign(self.cid, status="paused")
                        self.event("info", "paused")
                elif verb == "resume":
                    self.store.ack(cmd["id"], "resumed" if paused else "not paused")
                    if paused:
                        paused = False
                        self.store.update_campaign(self.cid, status="running")
                        self.event("info", "resumed")
            if not paused:
                return
            time.sleep(0.5)

    # ------------------------------------------------------------------ the round
    def stage_index(self, rnd: int) -> int:
        row = self.store.round(self.cid, rnd)
        return STAGES.index(row["stage"]) if row else -1

    def enter_stage(self, rnd: int, stage: str) -> None:
        self.store.update_round(self.cid, rnd, stage=stage)
        self.store.update_campaign(self.cid, stage=stage, round=rnd)
        self.set_progress(stage=stage, round=rnd, done=0, total=0)

    def run_round(self, rnd: int) -> None:
        first = "sample" if rnd == 0 else "filter"
        self.store.start_round(self.cid, rnd, first)
        done_upto = self.stage_index(rnd)
        if done_upto == STAGES.index("done"):
            return
        timings = self.store.round(self.cid, rnd)["timings"]
        self.store.update_campaign(self.cid, round=rnd)
        for stage in STAGES[STAGES.index(first):-1]:
            if STAGES.index(stage) < done_upto:
                continue  # finished before a restart
            self.check_commands()
            self.enter_stage(rnd, stage)
            started = time.time()
            getattr(self, f"stage_{stage}")(rnd)
            timings[stage] = round(timings.get(stage, 0.0) + time.time() - started, 3)
            self.store.update_round(self.cid, rnd, timings=timings)
        self.store.update_round(self.cid, rnd, stage="done", finished=time.time())
        self.store.update_campaign(self.cid, stage="done")

    # ------------------------------------------------------------------ filter
    def stage_filter(self, rnd: int) -> None:
        """Training set of round `rnd`: the previous round's kept train samples (plus earlier ones when
        accumulating), and its passing hinted samples (their own cap; always verified)."""
        f, h = self.cfg.filter, self.cfg.hint
        sources = range(rnd) if f.accumulate else [rnd - 1]
        kept: list[dict] = []
        columns = "id, task_id, idx, status, completion, norm_hash"
        for src in sources:
            candidates = self.store.samples(self.cid, rnd=src, purpose="train", columns=columns)
            ids = set(select_training(candidates, f.verified, f.dedupe, f.max_per_problem, derive_seed(self.cfg.seed, src, "filter")))
            kept += [c for c in candidates if c["id"] in ids]
            if h.max_train_per_problem:
                hinted = self.store.samples(self.cid, rnd=src, purpose="hint", columns=columns)
                ids = set(select_training(hinted, True, f.dedupe, h.max_train_per_problem, derive_seed(self.cfg.seed, src, "filter-hint")))
                kept += [c for c in hinted if c["id"] in ids]
        if f.dedupe:
            seen: set[tuple[str, str]] = set()
            unique = []
            for c in kept:  # earliest round first, unhinted before hinted
                key = (c["task_id"], c["norm_hash"])
                if key not in seen:
                    seen.add(key)
                    unique.append(c)
            kept = unique
        self.store.set_training_set(self.cid, rnd, [c["id"] for c in kept])
        tasks = {c["task_id"] for c in kept}
        self.event("info", f"round {rnd}: training set of {len(kept)} samples from {len(tasks)} problems")

    # ------------------------------------------------------------------ train
    def stage_train(self, rnd: int) -> None:
        from engine.train import train_lora

        ids = self.store.training_set(self.cid, rnd)
        out_dir = self.ws.checkpoint(self.cid, rnd)
        if self.cfg.model.backend == "replay":
            # Replayed samples come from a file, not from a model we could fine-tune.
            self._record_training(rnd, {"examples": len(ids), "skipped": "replay backend: no model to train"})
            return
        if not ids:
            self.event("warning", f"round {rnd}: nothing to train on (no passing samples); the model stays as it was")
            self._record_training(rnd, {"examples": 0, "skipped": "no passing samples"})
            return
        examples = self.training_examples(rnd)
        init = self.adapter_for(rnd - 1) if self.cfg.train.init == "continue" else None
        self.share_cores()
        self.store.clear_train_log(self.cid, rnd)
        self.set_progress(unit="steps")

        def on_step(step: int, total: int, loss: float) -> None:
            self.store.log_train_step(self.cid, rnd, step, loss)
            self.set_progress(done=step, total=total, loss=loss)
            self.check_commands()  # pause blocks here; stop raises and the round retrains on resume

        result = train_lora(self.cfg, examples, out_dir, init_adapter=init,
                            seed=derive_seed(self.cfg.seed, rnd, "train"), on_step=on_step, round=rnd,
                            tracker_dir=self.ws.tracker_dir(self.cid) if self.cfg.train.trackers else None)
        (out_dir / "COMPLETE").write_text(str(time.time()))
        info = {"examples": len(examples), "steps": result.steps, "tokens": result.tokens,
                "padded_tokens": result.padded_tokens, "final_loss": result.losses[-1] if result.losses else None, "seconds": round(result.seconds, 2),
                "tokens_per_s": round(result.tokens / result.seconds, 1) if result.seconds else None}
        self._record_training(rnd, info)
        self.event("info", f"round {rnd}: trained on {len(examples)} samples, {result.steps} steps, "
                           f"final loss {info['final_loss']:.3f}" if info["final_loss"] is not None else
                           f"round {rnd}: trained on {len(examples)} samples")

    def training_examples(self, rnd: int) -> list:
        """The round's training set as examples. Hinted samples train on the ORIGINAL prompt (the
        campaign's problems carry no hint: the model learns to answer without the hint it was
        shown), weighted by hint.weight."""
        from engine.train import TrainExample

        rows = [self.store.sample(i) for i in self.store.training_set(self.cid, rnd)]
        return [TrainExample(problem=self.by_id[r["task_id"]], output=r["output"],
                             weight=self.cfg.hint.weight if r["purpose"] == "hint" else 1.0) for r in rows]

    def _record_training(self, rnd: int, info: dict) -> None:
        row = self.store.round(self.cid, rnd)
        self.store.update_round(self.cid, rnd, metrics={**(row["metrics"] or {}), "training": info})

    def adapter_for(self, rnd: int) -> Path | None:
        """The adapter that model `rnd` is: the newest completed checkpoint at or before `rnd`."""
        for r in range(rnd, 0, -1):
            path = self.ws.checkpoint(self.cid, r)
            if (path / "COMPLETE").exists():
                return path
            if self.cfg.train.init == "base":
                break  # ReST-EM: a round with no training falls back to the base model
        return None

    # ------------------------------------------------------------------ sample + verify
    def get_sampler(self):
        if self.sampler is None:
            from engine.sampler import make_sampler

            self.event("info", f"loading model {self.cfg.model.spec}")
            self.sampler = make_sampler(self.cfg)
            self.sampler.tick = self.tick
        return self.sampler

    def share_cores(self) -> None:
        """With `model.threads = 0` on a CPU, split the cores with the other engines running on this
        machine (engine/cores.py); checked before every unit and training, so an engine that starts
        or ends next to this one changes its share within a unit. It counts the machine's registry
        (every workspace and user) and, should that miss some (an engine of an older sdtui, no
        flock here), its own workspace's live engines on this host: the larger of the two."""
        if self.cfg.model.threads or self.cfg.model.backend == "replay":
            return
        from engine.models import resolve_device

        if resolve_device(self.cfg.model.device) != "cpu":
            return
        host = socket.gethostname()
        here = sum(1 for c in self.store.campaigns() if c.get("engine_host") == host and engine_alive(c))
        engines = max(1, here, cores.count_engines())
        threads = cores.share_cpu(engines)
        if threads is not None:
            self.event("info", f"{engines} engine(s) on this machine: {threads} torch thread(s) for this one")

    def tick(self) -> None:
        """Called by the sampler while it generates: verdicts that are in are stored (the TUI shows
        them without waiting for the unit), and a waiting pause or stop interrupts the unit."""
        from engine.sampler import Interrupted

        self.harvest()
        if any(c["verb"] in ("pause", "stop") for c in self.store.open_commands(self.cid)):
            raise Interrupted()

    def train_allocation(self, rnd: int) -> dict[str, int]:
        """The round's samples per train problem (engine/budget.py), stored on first use so that a
        resumed round samples what it planned and the TUI can show it."""
        stored = self.store.allocation(self.cid, rnd, "sample")
        if stored is None:
            cfg, b = self.cfg, self.cfg.budget
            train = [p.task_id for p, s in self.problems if s == "train"]
            total = check_budget(cfg, len(train))
            previous = None
            if rnd > 0 and b.adaptive:
                credit = self.store.best_credit(self.cid, rnd - 1)
                previous = {r["task_id"]: budget.Seen(r["n"], r["c"], credit.get(r["task_id"], 0.0))
                            for r in self.store.problem_stats(self.cid, rnd - 1)}
            plan = budget.allocate(train, total, previous, b.adaptive, b.min_per_problem,
                                   b.max_per_problem or 4 * cfg.sampling.n)
            self.store.set_allocation(self.cid, rnd, "sample", [(t, n, why) for t, (n, why) in plan.items()])
            stored = self.store.allocation(self.cid, rnd, "sample") or {}
        return {t: n for t, (n, _) in stored.items()}

    def stage_sample(self, rnd: int) -> None:
        from engine.sampler import SamplingParams

        cfg = self.cfg
        train = [p for p, s in self.problems if s == "train"]
        heldout = [p for p, s in self.problems if s == "heldout"]
        alloc = self.train_allocation(rnd)
        plans = [
            (plan_units(train, "train", alloc, cfg.sampling.batch_size), SamplingParams.from_config(cfg)),
            (plan_units(heldout, "eval", cfg.eval_n, cfg.sampling.batch_size), SamplingParams.from_config(cfg, eval=True)),
        ]
        self.sample_units(rnd, plans, sum(alloc.values()) + len(heldout) * cfg.eval_n)

    def sample_units(self, rnd: int, plans: list, total: int) -> None:
        """Sample every unit of `plans` ([(units, params)]) not stored yet, and send each to the verifier."""
        from engine.sampler import Interrupted

        cfg = self.cfg
        sampler = self.get_sampler()
        sampler.set_adapter(self.adapter_for(rnd))
        purposes = {u.purpose for units, _ in plans for u in units}
        stored = {p: self.store.sampled_keys(self.cid, rnd, p) for p in purposes}
        done = sum(len(s) for s in stored.values())
        self.resubmit_pending(rnd)
        started, tokens, made = time.time(), 0, 0
        self.set_progress(unit="samples", done=done, total=total)
        for units, params in plans:
            for unit in units:
                keys = {(p.task_id, unit.start + j) for p in unit.problems for j in range(unit.count)}
                if keys <= stored[unit.purpose]:
                    continue
                seed = derive_seed(cfg.seed, rnd, unit.purpose, ",".join(p.task_id for p in unit.problems), unit.start)
                while True:
                    self.check_commands()
                    self.share_cores()
                    try:
                        gens = sampler.generate(list(unit.problems), unit.count, params, seed, round=rnd, start=unit.start)
                        break
                    except Interrupted:  # a pause or stop came in mid-unit: act on it, then redo the unit
                        self.event("info", "the unit being sampled was interrupted; it is sampled again on resume")
                rows = [
                    dict(campaign=self.cid, round=rnd, task_id=p.task_id, idx=unit.start + j, purpose=unit.purpose,
                         completion=g.completion, output=g.output, n_tokens=g.n_tokens,
                         norm_hash=diversity.norm_hash(g.completion), hint=p.hint or None)
                    for p, per_problem in zip(unit.problems, gens)
                    for j, g in enumerate(per_problem)
                    if (p.task_id, unit.start + j) not in stored[unit.purpose]
                ]
                ids = self.store.add_samples(rows)
                for sid, r in zip(ids, rows):
                    self.in_flight[self.verifier.submit(self.by_id[r["task_id"]], r["completion"])] = sid
                tokens += sum(r["n_tokens"] or 0 for r in rows)
                made += len(rows)
                done += len(rows)
                self.harvest()
                elapsed = max(time.time() - started, 1e-9)
                rate = made / elapsed
                self.set_progress(done=done, total=total, samples_per_s=round(rate, 3),
                                  tokens_per_s=round(tokens / elapsed, 1),
                                  eta_s=round((total - done) / rate, 1) if rate else None)
        if made:
            prev = getattr(self, "_sampling_stats", None) or {"samples": 0, "tokens": 0, "seconds": 0.0}
            self._sampling_stats = {"samples": prev["samples"] + made, "tokens": prev["tokens"] + tokens,
                                    "seconds": round(prev["seconds"] + time.time() - started, 2)}

    def resubmit_pending(self, rnd: int) -> None:
        """Samples stored but not verified when the last engine died go back to the verifier."""
        flying = set(self.in_flight.values())
        for s in self.store.pending_samples(self.cid, rnd):
            if s["id"] not in flying:
                self.in_flight[self.verifier.submit(self.by_id[s["task_id"]], s["completion"])] = s["id"]

    def harvest(self, wait: bool = False) -> None:
        """Store the verdicts that are in (all of them when `wait`)."""
        ready = [f for f in self.in_flight if wait or f.done()]
        verdicts = []
        for f in ready:
            v = f.result()
            verdicts.append((self.in_flight.pop(f), dict(status=v.status, detail=v.detail, stdout=v.stdout,
                                                         stderr=v.stderr, duration=v.duration,
                                                         behaviour=v.signature, asserts=v.asserts)))
        if verdicts:
            self.store.set_verdicts(verdicts)

    def stage_verify(self, rnd: int) -> None:
        """Wait for every verdict of the round (most came in while sampling went on)."""
        self.resubmit_pending(rnd)
        total = sum(self.store.count_samples(self.cid, rnd).values())
        while self.in_flight:
            self.check_commands()
            ready = [f for f in list(self.in_flight) if f.done()]
            if not ready:
                time.sleep(0.05)
            self.harvest()
            counts = self.store.count_samples(self.cid, rnd)
            self.set_progress(unit="samples", done=total - counts.get("pending", 0), total=total,
                              passed=counts.get("passed", 0))

    # ------------------------------------------------------------------ hint
    def stage_hint(self, rnd: int) -> None:
        """Re-sample the train problems no sample solved this round, each prompt carrying the failing
        test of the model's own closest attempt (and, with show_attempt, its code). Held-out
        problems are never hinted. The hinted samples are verified here, before the metrics."""
        from engine.prompts import defines_function
        from engine.sampler import SamplingParams

        h = self.cfg.hint
        if not h.enabled:
            return
        samples = self.store.samples(self.cid, rnd=rnd, purpose="train",
                                     columns="task_id, idx, status, detail, completion, asserts_passed, asserts_total")
        by_task: dict[str, list[dict]] = {}
        for smp in samples:
            by_task.setdefault(smp["task_id"], []).append(smp)
        attempts = {t: budget.closest_attempt(rows) for t, rows in by_task.items()
                    if not any(r["status"] == "passed" for r in rows)}
        attempts = {t: a for t, a in attempts.items() if a is not None}
        stored = self.store.allocation(self.cid, rnd, "hint")
        if stored is None:
            order = [p.task_id for p, s in self.problems if s == "train" and p.task_id in attempts]
            plan = budget.split_hints([(t, budget.credit(attempts[t])) for t in order], h.samples)
            self.store.set_allocation(self.cid, rnd, "hint", [(t, n, why) for t, (n, why) in plan.items()])
            stored = {t: (n, why) for t, (n, why) in plan.items()}
        hinted = []
        for t in stored:
            problem, attempt = self.by_id[t], attempts[t]
            code = attempt["completion"]
            if not defines_function(code, problem.entry_point):
                code = problem.prompt + code  # a body: show it under its signature
            hinted.append(replace(problem, hint=budget.hint_text(attempt, h.show_attempt, code)))
        if stored:
            self.event("info", f"round {rnd}: {sum(n for n, _ in stored.values())} hinted samples for "
                               f"{len(stored)} unsolved train problems")
        alloc = {t: n for t, (n, _) in stored.items()}
        units = plan_units(hinted, "hint", alloc, self.cfg.sampling.batch_size)
        self.sample_units(rnd, [(units, SamplingParams.from_config(self.cfg))], sum(alloc.values()))
        self.stage_verify(rnd)

    # ------------------------------------------------------------------ metrics
    def stage_metrics(self, rnd: int) -> None:
        cfg = self.cfg
        counts = self.store.pass_counts(self.cid, rnd)  # hinted samples do not measure the model: not in here
        hint_counts = self.store.pass_counts(self.cid, rnd, hinted=True)
        credit = self.store.best_credit(self.cid, rnd)
        samples = [s for s in self.store.samples(self.cid, rnd=rnd, columns="task_id, purpose, completion, status, norm_hash, behaviour")
                   if s["purpose"] != "hint"]
        by_task: dict[str, list[dict]] = {}
        for s in samples:
            by_task.setdefault(s["task_id"], []).append(s)
        history = [{r["task_id"]: (r["n"], r["c"]) for r in self.store.problem_stats(self.cid, k)} for k in range(rnd)]
        history.append(counts)
        prev = {r["task_id"]: r["bucket"] for r in self.store.problem_stats(self.cid, rnd - 1)} if rnd else None
        kmax = max(cfg.eval.k)

        stats, per_problem_div, out = [], {}, {}
        for task_id, (n, c) in counts.items():
            rows = by_task[task_id]
            div = diversity.problem_diversity([r["completion"] for r in rows], [r["status"] == "passed" for r in rows],
                                              k=min(kmax, n), hashes=[r["norm_hash"] for r in rows],
                                              signatures=[r["behaviour"] for r in rows])
            per_problem_div[task_id] = div
            hn, hc = hint_counts.get(task_id, (0, 0))
            stats.append(dict(task_id=task_id, split=self.split[task_id], n=n, c=c, bucket=metrics.bucket(n, c),
                              diversity=div, hint_n=hn, hint_c=hc, credit=round(credit.get(task_id, 0.0), 4)))
        buckets = {s["task_id"]: s["bucket"] for s in stats}
        transitions = {}
        for side in ("train", "heldout"):
            side_counts = {t: nc for t, nc in counts.items() if self.split[t] == side}
            out[side] = metrics.round_summary(side_counts, cfg.eval.k)
            if prev is not None:
                transitions[side] = metrics.transitions(
                    {t: b for t, b in prev.items() if self.split.get(t) == side},
                    {t: b for t, b in buckets.items() if self.split[t] == side},
                )
        solved, unsolvable = metrics.solved_split(history)
        # the unsolvable set's edge: problems no sample solved at round 0 that this round solves
        unsolved_r0 = {t for t, (_n, c) in history[0].items() if c == 0}
        left = {side: sum(1 for t in unsolved_r0 if self.split[t] == side and counts.get(t, (0, 0))[1] > 0)
                for side in ("train", "heldout")}
        round_div = diversity.round_diversity(per_problem_div)
        rounds = self.store.rounds(self.cid)
        base_div = round_div if rnd == 0 else rounds[0]["metrics"]["diversity"]
        gauge = diversity.gauge(round_div, base_div)
        gauges = [r["metrics"]["gauge"] for r in rounds[:rnd] if r.get("metrics") and "gauge" in r["metrics"]] + [gauge]
        state, reason = diversity.assess_collapse(gauges, cfg.collapse)
        n_passed = sum(c for _, c in counts.values())
        previous = (self.store.round(self.cid, rnd)["metrics"] or {})
        sampling = getattr(self, "_sampling_stats", None) or previous.get("sampling")
        result = {
            **{k: v for k, v in previous.items() if k == "training"},
            **out,
            "transitions": transitions or None,
            "solved": {side: sum(1 for t in solved if self.split[t] == side) for side in ("train", "heldout")},
            "unsolvable": {side: sum(1 for t in unsolvable if self.split[t] == side) for side in ("train", "heldout")},
            "diversity": round_div,
            "gauge": gauge,
            "collapse": {"state": state, "reason": reason},
            "samples": {"total": len(samples), "passed": n_passed},
            "left_unsolved": {**left, "of": {side: sum(1 for t in unsolved_r0 if self.split[t] == side)
                                             for side in ("train", "heldout")}},
            # what the train problems cost this round, hinted re-samples included (the budget)
            "budget": {"train_samples": sum(n for t, (n, _c) in counts.items() if self.split[t] == "train")
                       + sum(n for n, _c in hint_counts.values()), "adaptive": cfg.budget.adaptive},
        }
        if cfg.hint.enabled or hint_counts:
            result["hints"] = {"problems": len(hint_counts), "samples": sum(n for n, _ in hint_counts.values()),
                               "passed": sum(c for _, c in hint_counts.values()),
                               "problems_passed": sum(1 for _, c in hint_counts.values() if c > 0)}
        if sampling:
            result["sampling"] = sampling
            result["throughput"] = {"samples_per_s": round(sampling["samples"] / max(sampling["seconds"], 1e-9), 3),
                                    "tokens_per_s": round(sampling["tokens"] / max(sampling["seconds"], 1e-9), 1)}
        self._sampling_stats = None
        self.store.set_problem_stats(self.cid, rnd, stats)
        self.store.update_round(self.cid, rnd, metrics=result)
        ks = "  ".join(f"pass@{k} {out['train'][f'pass@{k}']:.3f}/{out['heldout'].get(f'pass@{k}', float('nan')):.3f}"
                       for k in cfg.eval.k)
        self.event("info", f"round {rnd}: {ks} (train/held-out); solved {len(solved)}, unsolvable {len(unsolvable)}; "
                           f"diversity gauge {'-' if gauge['value'] is None else round(gauge['value'])}")
        if state != "ok":
            self.event("warning", f"round {rnd}: diversity {state}: {reason}")
        if cfg.train.trackers:
            from engine.train import log_round_metrics

            log_round_metrics(cfg, self.ws.tracker_dir(self.cid), rnd, result)
        if state == "collapse" and cfg.collapse.on_collapse != "warn" and rnd < cfg.rounds:
            self.stop_after_round = True
            self.event("warning", f"collapse policy ({cfg.collapse.on_collapse}): no further rounds")
