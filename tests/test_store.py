"""The store: WAL, schema version, atomic units, commands, liveness."""

import os
import socket
import sqlite3
import time

import pytest

from engine.problems import Problem
from engine.store import SCHEMA_VERSION, Store, display_status


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "sdtui.db")


def new_campaign(store):
    return store.create_campaign("c", 'name = "c"', None, [(Problem("a", "p", "f", "t"), "train"),
                                                            (Problem("b", "p", "g", "t"), "heldout")])


def test_wal_and_schema_version(store, tmp_path):
    conn = sqlite3.connect(tmp_path / "sdtui.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    conn.commit()
    with pytest.raises(RuntimeError, match="newer sdtui"):
        Store(tmp_path / "sdtui.db")


def test_problems_keep_order_and_split(store):
    cid = new_campaign(store)
    assert [(p.task_id, s) for p, s in store.problems(cid)] == [("a", "train"), ("b", "heldout")]


def test_a_unit_of_samples_lands_whole_or_not_at_all(store):
    cid = new_campaign(store)
    row = dict(campaign=cid, round=0, task_id="a", purpose="train", completion="x", output="x")
    store.add_samples([{**row, "idx": 0}, {**row, "idx": 1}])
    with pytest.raises(sqlite3.IntegrityError):
        store.add_samples([{**row, "idx": 2}, {**row, "idx": 1}])  # idx 1 repeats: the whole unit rolls back
    assert store.sampled_keys(cid, 0, "train") == {("a", 0), ("a", 1)}
    ids = [s["id"] for s in store.pending_samples(cid)]
    store.set_verdicts([(ids[0], {"status": "passed"}), (ids[1], {"status": "failed", "detail": "AssertionError"})])
    assert store.pass_counts(cid, 0) == {"a": (2, 1)}
    assert store.samples(cid, status="failed")[0]["detail"] == "AssertionError"
    assert store.samples(cid, text="Assertion")[0]["idx"] == 1


def test_commands_enqueue_and_ack(store):
    cid = new_campaign(store)
    first = store.enqueue(cid, "pause")
    store.enqueue(cid, "stop_after_round")
    assert [c["verb"] for c in store.open_commands(cid)] == ["pause", "stop_after_round"]
    store.ack(first, "paused")
    assert [c["verb"] for c in store.open_commands(cid)] == ["stop_after_round"]
    with pytest.raises(ValueError):
        store.enqueue(cid, "rm -rf")


def test_display_status_derives_engine_lost(store):
    cid = new_campaign(store)
    c = store.campaign(cid)
    assert display_status(c) == "starting"
    store.update_campaign(cid, status="running", engine_pid=os.getpid(), engine_host=socket.gethostname())
    store.heartbeat(cid, {"stage": "sample"})
    c = store.campaign(cid)
    assert display_status(c) == "running" and c["progress"] == {"stage": "sample"}
    assert display_status(c, now=time.time() + 60) == "engine lost"
    store.update_campaign(cid, engine_pid=2**22 + 12345)  # no such pid
    assert display_status(store.campaign(cid)) == "engine lost"


# what each schema version added, to take a current database back to an older one
_ADDED = {2: [("samples", "behaviour")],
          3: [("samples", "asserts_passed"), ("samples", "asserts_total"), ("samples", "hint"),
              ("problem_stats", "hint_n"), ("problem_stats", "hint_c"), ("problem_stats", "credit")]}


@pytest.mark.parametrize("old", [1, 2])
def test_an_older_database_is_upgraded_in_place(tmp_path, old):
    import sqlite3

    path = tmp_path / "old.db"
    s = Store(path)  # a current one, then taken back to what version `old` looked like
    cid = new_campaign(s)
    s.add_samples([dict(campaign=cid, round=0, task_id="a", idx=0, purpose="train", completion="x", output="x",
                        n_tokens=1, norm_hash="h")])
    s.set_problem_stats(cid, 0, [dict(task_id="a", split="train", n=1, c=0, bucket="unsolved")])
    s.close()
    conn = sqlite3.connect(path)
    for version in range(old + 1, SCHEMA_VERSION + 1):
        for table, column in _ADDED[version]:
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    conn.execute("DROP TABLE allocations")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(old)])
    conn.commit()
    conn.close()
    s = Store(path)
    assert s._schema_version() == SCHEMA_VERSION == 3
    [row] = s.samples(cid)
    assert row["completion"] == "x" and row["behaviour"] is None and row["hint"] is None  # nothing stored is lost
    assert s.problem_stats(cid, 0)[0]["hint_n"] == 0
    s.set_verdicts([(row["id"], dict(status="failed", behaviour="abc", asserts=(2, 5)))])
    row = s.samples(cid)[0]
    assert (row["behaviour"], row["asserts_passed"], row["asserts_total"]) == ("abc", 2, 5)
    s.set_allocation(cid, 1, "sample", [("a", 7, "even split")])
    assert s.allocation(cid, 1, "sample") == {"a": (7, "even split")}
    s.close()
