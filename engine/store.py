"""Campaign state in SQLite: the only module that speaks SQL.

One database per workspace (`sdtui.db`, WAL mode so that TUIs and the CLI read while the engine
writes). The engine process is the only writer of campaign state; the TUI and the CLI write only
`commands` rows, which the engine acknowledges. A `Store` holds one connection: make one per thread.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import sqlite_utils

from engine.problems import Problem

SCHEMA_VERSION = 3  # 2: samples.behaviour; 3: partial credit, hinted samples, allocations

# Campaign statuses written by the engine. "engine lost" is never stored: readers derive it
# from a stale heartbeat (see `engine_alive`).
ACTIVE = ("starting", "running", "paused")
HEARTBEAT_STALE_S = 15.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS campaigns (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    config TEXT NOT NULL,            -- the campaign TOML, as run
    config_path TEXT,
    status TEXT NOT NULL,            -- starting | running | paused | finished | stopped | failed
    stage TEXT,                      -- sample | verify | metrics | filter | train | done
    round INTEGER,
    created REAL NOT NULL,
    updated REAL,
    engine_pid INTEGER,
    engine_host TEXT,
    heartbeat REAL,
    progress TEXT,                   -- JSON: stage, done, total, rates, eta (live, overwritten)
    error TEXT
);
CREATE TABLE IF NOT EXISTS problems (
    campaign INTEGER NOT NULL,
    task_id TEXT NOT NULL,
    split TEXT NOT NULL,             -- train | heldout
    prompt TEXT NOT NULL,
    test TEXT NOT NULL,
    entry_point TEXT NOT NULL,
    setup TEXT NOT NULL DEFAULT '',
    position INTEGER NOT NULL,
    PRIMARY KEY (campaign, task_id)
);
CREATE TABLE IF NOT EXISTS rounds (
    campaign INTEGER NOT NULL,
    round INTEGER NOT NULL,
    stage TEXT NOT NULL,
    started REAL,
    finished REAL,
    metrics TEXT,                    -- JSON, see engine/runner.py `_round_metrics`
    timings TEXT,                    -- JSON: seconds per stage
    PRIMARY KEY (campaign, round)
);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY,
    campaign INTEGER NOT NULL,
    round INTEGER NOT NULL,
    task_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    purpose TEXT NOT NULL,           -- train (train problems) | eval (held-out problems) | hint (hinted re-samples of train problems)
    completion TEXT NOT NULL,        -- prompt + completion = the program
    output TEXT NOT NULL,            -- the model's own text (what training learns)
    status TEXT NOT NULL,            -- pending | passed | failed | timed out | error
    detail TEXT,
    stdout TEXT,
    stderr TEXT,
    duration REAL,                   -- verification seconds
    n_tokens INTEGER,
    norm_hash TEXT,
    behaviour TEXT,                  -- the verifier's signature of the sample's answers (diversity)
    asserts_passed INTEGER,          -- partial credit: the tests' asserts passed before the first failure
    asserts_total INTEGER,           -- ... of this many (NULL: the tests have no asserts to count)
    hint TEXT,                       -- purpose hint: the hint the prompt carried (training drops it)
    created REAL NOT NULL,
    UNIQUE (campaign, round, purpose, task_id, idx)
);
CREATE INDEX IF NOT EXISTS samples_by_task ON samples (campaign, round, task_id, status);
CREATE INDEX IF NOT EXISTS samples_pending ON samples (campaign, status);
CREATE TABLE IF NOT EXISTS problem_stats (
    campaign INTEGER NOT NULL,
    round INTEGER NOT NULL,
    task_id TEXT NOT NULL,
    split TEXT NOT NULL,
    n INTEGER NOT NULL,
    c INTEGER NOT NULL,
    bucket TEXT NOT NULL,
    diversity TEXT,                  -- JSON, engine/diversity.py `problem_diversity`
    hint_n INTEGER NOT NULL DEFAULT 0,  -- hinted samples (not in n, c: they do not measure the model)
    hint_c INTEGER NOT NULL DEFAULT 0,  -- ... of which passed
    credit REAL,                     -- the best partial credit among the round's unhinted samples (0-1)
    PRIMARY KEY (campaign, round, task_id)
);
CREATE TABLE IF NOT EXISTS allocations (
    campaign INTEGER NOT NULL,
    round INTEGER NOT NULL,
    task_id TEXT NOT NULL,
    kind TEXT NOT NULL,              -- sample (the round's samples of a train problem) | hint (hinted re-samples)
    n INTEGER NOT NULL,
    reason TEXT NOT NULL,            -- why this many (the budget rule that gave it)
    PRIMARY KEY (campaign, round, task_id, kind)
);
CREATE TABLE IF NOT EXISTS training_sets (
    campaign INTEGER NOT NULL,
    round INTEGER NOT NULL,          -- the training round that used these samples
    sample_id INTEGER NOT NULL,
    PRIMARY KEY (campaign, round, sample_id)
);
CREATE TABLE IF NOT EXISTS train_log (
    campaign INTEGER NOT NULL,
    round INTEGER NOT NULL,
    step INTEGER NOT NULL,
    loss REAL NOT NULL,
    time REAL NOT NULL,
    PRIMARY KEY (campaign, round, step)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    campaign INTEGER,
    time REAL NOT NULL,
    level TEXT NOT NULL,             -- info | warning | error
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_campaign ON events (campaign, id);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY,
    campaign INTEGER NOT NULL,
    verb TEXT NOT NULL,              -- pause | resume | stop | stop_after_round
    args TEXT,
    created REAL NOT NULL,
    acked REAL,
    result TEXT
);
CREATE INDEX IF NOT EXISTS commands_open ON commands (campaign, acked);
"""

_COMMAND_VERBS = ("pause", "resume", "stop", "stop_after_round")


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


class Store:
    """A connection to the workspace database with the queries every part of sdtui needs."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit at the driver level; multi-statement writes use `atomic()` explicitly.
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        self.db = sqlite_utils.Database(conn)
        self._migrate()

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        """Create or upgrade the schema; a database already at this version is only read.

        Readers (TUIs, `sdtui status`) open the store often: they must not take the write lock.
        """
        if self._schema_version() == SCHEMA_VERSION:
            return
        if self.db.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self.db.conn.execute("PRAGMA journal_mode = WAL")
        # IMMEDIATE: take the write lock up front, so two processes creating the schema at once
        # wait for each other instead of failing to upgrade a read lock.
        self.db.conn.execute("BEGIN IMMEDIATE")
        try:
            version = self._schema_version()
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} was written by a newer sdtui (schema {version} > {SCHEMA_VERSION}); upgrade sdtui"
                )
            # Migrations from older versions, one `if 0 < version < N:` block each, before the schema
            # statements (whose indexes may use the new columns).
            if 0 < version < 2:
                self.db.conn.execute("ALTER TABLE samples ADD COLUMN behaviour TEXT")
            if 0 < version < 3:
                for table, column in (("samples", "asserts_passed INTEGER"), ("samples", "asserts_total INTEGER"),
                                      ("samples", "hint TEXT"), ("problem_stats", "hint_n INTEGER NOT NULL DEFAULT 0"),
                                      ("problem_stats", "hint_c INTEGER NOT NULL DEFAULT 0"),
                                      ("problem_stats", "credit REAL")):
                    self.db.conn.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self.db.conn.execute(statement)
            self.db.conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
            )
            self.db.conn.execute("COMMIT")
        except BaseException:
            self.db.conn.execute("ROLLBACK")
            raise

    def _schema_version(self) -> int:
        try:
            row = self.db.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError:  # no meta table yet: a new database
            return 0
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------ campaigns
    def create_campaign(self, name: str, config_text: str, config_path: str | None,
                        problems: Sequence[tuple[Problem, str]]) -> int:
        """A new campaign with its problems (each with its split), in one transaction."""
        now = time.time()
        with self.db.atomic():
            cur = self.db.execute(
                "INSERT INTO campaigns (name, config, config_path, status, stage, round, created, updated)"
                " VALUES (?, ?, ?, 'starting', NULL, 0, ?, ?)",
                [name, config_text, config_path, now, now],
            )
            cid = cur.lastrowid
            self.db["problems"].insert_all(
                (
                    dict(campaign=cid, task_id=p.task_id, split=split, prompt=p.prompt, test=p.test,
                         entry_point=p.entry_point, setup=p.setup, position=i)
                    for i, (p, split) in enumerate(problems)
                ),
                batch_size=500,
            )
        return cid

    def campaign(self, cid: int) -> dict | None:
        row = self.db.execute_returning_dicts("SELECT * FROM campaigns WHERE id = ?", [cid])
        return _campaign_row(row[0]) if row else None

    def campaigns(self) -> list[dict]:
        return [_campaign_row(r) for r in self.db.execute_returning_dicts("SELECT * FROM campaigns ORDER BY id")]

    def update_campaign(self, cid: int, **fields: Any) -> None:
        if "progress" in fields and not isinstance(fields["progress"], (str, type(None))):
            fields["progress"] = json.dumps(fields["progress"])
        fields["updated"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in fields)
        self.db.execute(f"UPDATE campaigns SET {cols} WHERE id = ?", [*fields.values(), cid])

    def heartbeat(self, cid: int, progress: dict | None = None) -> None:
        if progress is None:
            self.db.execute("UPDATE campaigns SET heartbeat = ? WHERE id = ?", [time.time(), cid])
        else:
            self.db.execute(
                "UPDATE campaigns SET heartbeat = ?, progress = ? WHERE id = ?",
                [time.time(), json.dumps(progress), cid],
            )

    def problems(self, cid: int) -> list[tuple[Problem, str]]:
        rows = self.db.execute_returning_dicts(
            "SELECT * FROM problems WHERE campaign = ? ORDER BY position", [cid]
        )
        return [
            (Problem(task_id=r["task_id"], prompt=r["prompt"], entry_point=r["entry_point"], test=r["test"],
                     setup=r["setup"]), r["split"])
            for r in rows
        ]

    # ------------------------------------------------------------------ rounds
    def start_round(self, cid: int, rnd: int, stage: str) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO rounds (campaign, round, stage, started) VALUES (?, ?, ?, ?)",
            [cid, rnd, stage, time.time()],
        )

    def update_round(self, cid: int, rnd: int, **fields: Any) -> None:
        for key in ("metrics", "timings"):
            if key in fields and not isinstance(fields[key], (str, type(None))):
                fields[key] = json.dumps(fields[key])
        cols = ", ".join(f"{k} = ?" for k in fields)
        self.db.execute(f"UPDATE rounds SET {cols} WHERE campaign = ? AND round = ?", [*fields.values(), cid, rnd])

    def rounds(self, cid: int) -> list[dict]:
        rows = self.db.execute_returning_dicts("SELECT * FROM rounds WHERE campaign = ? ORDER BY round", [cid])
        for r in rows:
            r["metrics"] = _loads(r["metrics"])
            r["timings"] = _loads(r["timings"]) or {}
        return rows

    def round(self, cid: int, rnd: int) -> dict | None:
        return next((r for r in self.rounds(cid) if r["round"] == rnd), None)

    # ------------------------------------------------------------------ samples
    def add_samples(self, rows: Iterable[dict]) -> list[int]:
        """Insert one unit of work's samples atomically; returns their ids in order.

        A unit either lands whole or not at all, which is what lets a killed engine resume at the
        first unfinished unit without duplicates or gaps.
        """
        now = time.time()
        ids = []
        with self.db.atomic():
            for r in rows:
                cur = self.db.execute(
                    "INSERT INTO samples (campaign, round, task_id, idx, purpose, completion, output, status,"
                    " n_tokens, norm_hash, hint, created) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
                    [r["campaign"], r["round"], r["task_id"], r["idx"], r["purpose"], r["completion"],
                     r["output"], r.get("n_tokens"), r.get("norm_hash"), r.get("hint"), now],
                )
                ids.append(cur.lastrowid)
        return ids

    def set_verdicts(self, verdicts: Iterable[tuple[int, dict]]) -> None:
        """Record verification results: (sample id, {status, detail, stdout, stderr, duration, behaviour,
        asserts: (passed, total) | None})."""
        with self.db.atomic():
            for sid, v in verdicts:
                passed, total = v.get("asserts") or (None, None)
                self.db.execute(
                    "UPDATE samples SET status = ?, detail = ?, stdout = ?, stderr = ?, duration = ?, behaviour = ?,"
                    " asserts_passed = ?, asserts_total = ? WHERE id = ?",
                    [v["status"], v.get("detail", ""), v.get("stdout", ""), v.get("stderr", ""), v.get("duration"),
                     v.get("behaviour"), passed, total, sid],
                )

    def sampled_keys(self, cid: int, rnd: int, purpose: str) -> set[tuple[str, int]]:
        """(task_id, idx) of the samples already stored for a round and purpose."""
        return {
            (t, i)
            for t, i in self.db.execute(
                "SELECT task_id, idx FROM samples WHERE campaign = ? AND round = ? AND purpose = ?", [cid, rnd, purpose]
            ).fetchall()
        }

    def pending_samples(self, cid: int, rnd: int | None = None) -> list[dict]:
        sql = "SELECT id, round, task_id, idx, completion FROM samples WHERE campaign = ? AND status = 'pending'"
        args: list[Any] = [cid]
        if rnd is not None:
            sql += " AND round = ?"
            args.append(rnd)
        return self.db.execute_returning_dicts(sql + " ORDER BY id", args)

    def pass_counts(self, cid: int, rnd: int, hinted: bool = False) -> dict[str, tuple[int, int]]:
        """task_id -> (n samples, c passed) for one round: the samples that measure the model (train
        and eval), or with `hinted` the hinted re-samples instead."""
        rows = self.db.execute(
            "SELECT task_id, COUNT(*), SUM(status = 'passed') FROM samples"
            f" WHERE campaign = ? AND round = ? AND purpose {'=' if hinted else '!='} 'hint' GROUP BY task_id",
            [cid, rnd],
        ).fetchall()
        return {t: (n, int(c or 0)) for t, n, c in rows}

    def best_credit(self, cid: int, rnd: int) -> dict[str, float]:
        """task_id -> the best partial credit (share of asserts passed) among a round's unhinted samples."""
        rows = self.db.execute(
            "SELECT task_id, MAX(CASE WHEN status = 'passed' THEN 1.0 WHEN asserts_total > 0"
            " THEN 1.0 * asserts_passed / asserts_total ELSE 0.0 END) FROM samples"
            " WHERE campaign = ? AND round = ? AND purpose != 'hint' GROUP BY task_id",
            [cid, rnd],
        ).fetchall()
        return {t: float(c or 0.0) for t, c in rows}

    def samples(self, cid: int, rnd: int | None = None, task_id: str | None = None, purpose: str | None = None,
                status: str | None = None, text: str | None = None, limit: int | None = None,
                columns: str = "*") -> list[dict]:
        """Samples matching every filter given (the TUI's sample browser and the runner use this)."""
        where, args = ["campaign = ?"], [cid]
        for col, val in (("round", rnd), ("task_id", task_id), ("purpose", purpose), ("status", status)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        if text:
            where.append("(completion LIKE ? OR detail LIKE ?)")
            args += [f"%{text}%", f"%{text}%"]
        sql = f"SELECT {columns} FROM samples WHERE {' AND '.join(where)} ORDER BY round, task_id, purpose, idx"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return self.db.execute_returning_dicts(sql, args)

    def sample(self, sid: int) -> dict | None:
        rows = self.db.execute_returning_dicts("SELECT * FROM samples WHERE id = ?", [sid])
        return rows[0] if rows else None

    def count_samples(self, cid: int, rnd: int | None = None) -> dict[str, int]:
        """status -> count, for progress displays."""
        sql = "SELECT status, COUNT(*) FROM samples WHERE campaign = ?"
        args: list[Any] = [cid]
        if rnd is not None:
            sql += " AND round = ?"
            args.append(rnd)
        return dict(self.db.execute(sql + " GROUP BY status", args).fetchall())

    # ------------------------------------------------------------------ per-problem stats
    def set_problem_stats(self, cid: int, rnd: int, rows: Sequence[dict]) -> None:
        with self.db.atomic():
            self.db.execute("DELETE FROM problem_stats WHERE campaign = ? AND round = ?", [cid, rnd])
            self.db["problem_stats"].insert_all(
                ({**r, "campaign": cid, "round": rnd, "diversity": json.dumps(r.get("diversity"))} for r in rows),
                batch_size=500,
            )

    def problem_stats(self, cid: int, rnd: int | None = None) -> list[dict]:
        sql = "SELECT * FROM problem_stats WHERE campaign = ?"
        args: list[Any] = [cid]
        if rnd is not None:
            sql += " AND round = ?"
            args.append(rnd)
        rows = self.db.execute_returning_dicts(sql + " ORDER BY round, task_id", args)
        for r in rows:
            r["diversity"] = _loads(r["diversity"])
        return rows

    # ------------------------------------------------------------------ sample budget
    def set_allocation(self, cid: int, rnd: int, kind: str, rows: Sequence[tuple[str, int, str]]) -> None:
        """How many samples each problem gets in a round: (task_id, n, reason) rows of one kind."""
        with self.db.atomic():
            self.db.execute("DELETE FROM allocations WHERE campaign = ? AND round = ? AND kind = ?", [cid, rnd, kind])
            self.db["allocations"].insert_all(
                ({"campaign": cid, "round": rnd, "task_id": t, "kind": kind, "n": n, "reason": why} for t, n, why in rows),
                batch_size=500,
            )

    def allocation(self, cid: int, rnd: int, kind: str) -> dict[str, tuple[int, str]] | None:
        """task_id -> (n, reason) of a round's stored allocation; None when none is stored."""
        rows = self.db.execute(
            "SELECT task_id, n, reason FROM allocations WHERE campaign = ? AND round = ? AND kind = ?", [cid, rnd, kind]
        ).fetchall()
        return {t: (n, why) for t, n, why in rows} if rows else None

    def allocations(self, cid: int, task_id: str | None = None) -> list[dict]:
        sql, args = "SELECT * FROM allocations WHERE campaign = ?", [cid]
        if task_id is not None:
            sql += " AND task_id = ?"
            args.append(task_id)
        return self.db.execute_returning_dicts(sql + " ORDER BY round, kind, task_id", args)

    # ------------------------------------------------------------------ training
    def set_training_set(self, cid: int, rnd: int, sample_ids: Sequence[int]) -> None:
        with self.db.atomic():
            self.db.execute("DELETE FROM training_sets WHERE campaign = ? AND round = ?", [cid, rnd])
            self.db["training_sets"].insert_all(
                ({"campaign": cid, "round": rnd, "sample_id": s} for s in sample_ids), batch_size=500
            )

    def training_set(self, cid: int, rnd: int) -> list[int]:
        return [
            r[0]
            for r in self.db.execute(
                "SELECT sample_id FROM training_sets WHERE campaign = ? AND round = ? ORDER BY sample_id", [cid, rnd]
            ).fetchall()
        ]

    def log_train_step(self, cid: int, rnd: int, step: int, loss: float) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO train_log (campaign, round, step, loss, time) VALUES (?, ?, ?, ?, ?)",
            [cid, rnd, step, loss, time.time()],
        )

    def clear_train_log(self, cid: int, rnd: int) -> None:
        self.db.execute("DELETE FROM train_log WHERE campaign = ? AND round = ?", [cid, rnd])

    def train_log(self, cid: int, rnd: int | None = None) -> list[dict]:
        sql = "SELECT round, step, loss, time FROM train_log WHERE campaign = ?"
        args: list[Any] = [cid]
        if rnd is not None:
            sql += " AND round = ?"
            args.append(rnd)
        return self.db.execute_returning_dicts(sql + " ORDER BY round, step", args)

    # ------------------------------------------------------------------ events
    def log(self, cid: int | None, level: str, text: str) -> None:
        self.db.execute(
            "INSERT INTO events (campaign, time, level, text) VALUES (?, ?, ?, ?)", [cid, time.time(), level, text]
        )

    def events(self, cid: int, limit: int = 50, after_id: int = 0) -> list[dict]:
        """The newest `limit` events (after `after_id`), oldest first."""
        rows = self.db.execute_returning_dicts(
            "SELECT * FROM events WHERE campaign = ? AND id > ? ORDER BY id DESC LIMIT ?", [cid, after_id, limit]
        )
        return rows[::-1]

    # ------------------------------------------------------------------ commands
    def enqueue(self, cid: int, verb: str, args: dict | None = None) -> int:
        """The one write the TUI and the CLI make: ask the engine to do something."""
        if verb not in _COMMAND_VERBS:
            raise ValueError(f"unknown command {verb!r}")
        cur = self.db.execute(
            "INSERT INTO commands (campaign, verb, args, created) VALUES (?, ?, ?, ?)",
            [cid, verb, json.dumps(args or {}), time.time()],
        )
        return cur.lastrowid

    def open_commands(self, cid: int) -> list[dict]:
        return self.db.execute_returning_dicts(
            "SELECT * FROM commands WHERE campaign = ? AND acked IS NULL ORDER BY id", [cid]
        )

    def ack(self, command_id: int, result: str) -> None:
        self.db.execute("UPDATE commands SET acked = ?, result = ? WHERE id = ?", [time.time(), result, command_id])

    def commands(self, cid: int) -> list[dict]:
        return self.db.execute_returning_dicts("SELECT * FROM commands WHERE campaign = ? ORDER BY id", [cid])


def _campaign_row(row: dict) -> dict:
    row["progress"] = _loads(row.get("progress")) or {}
    return row


def engine_alive(campaign: dict, now: float | None = None) -> bool:
    """Whether the campaign's engine is running: a fresh heartbeat, and the pid exists when local."""
    import os
    import socket

    hb = campaign.get("heartbeat")
    if not hb or (now or time.time()) - hb > HEARTBEAT_STALE_S:
        return False
    pid = campaign.get("engine_pid")
    if pid and campaign.get("engine_host") == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
    return True


def display_status(campaign: dict, now: float | None = None) -> str:
    """The status a person should see: the stored one, or 'engine lost' when an active engine died."""
    now = now or time.time()
    if campaign["status"] == "starting" and not campaign.get("heartbeat") and now - campaign["created"] < 60:
        return "starting"  # the engine is still loading its model
    if campaign["status"] in ACTIVE and not engine_alive(campaign, now):
        return "engine lost"
    return campaign["status"]
