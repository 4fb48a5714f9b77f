"""The store's ``run_values`` (each run's value of each name: its metric's last value, else its
param), kept by triggers, and the queries that read it at scale (issue 12, item 9): a
condition or a sort is an index range, not a lookup per run."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from backends.query import RunFilter, parse_where, select_runs
from backends.status import RunStatus
from backends.store import SCHEMA, RunMeta, RunStore


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "runs.db")


def run(store: RunStore, created: float, **meta: object) -> str:
    rec = store.create("p", "local", "local", runconfig=None, script="t.py", args=[], env={},
                       created=created, meta=RunMeta(**meta))  # type: ignore[arg-type]
    return rec.id


def values(store: RunStore, run_id: str) -> dict[str, tuple[object, bool]]:
    rows = store._db.execute("SELECT name, value, num, txt, metric FROM run_values"
                             " WHERE run_id = ?", (run_id,)).fetchall()
    return {r["name"]: (json.loads(r["value"]), bool(r["metric"])) for r in rows}


def test_a_metrics_last_value_wins_over_a_param_whatever_the_order(store: RunStore) -> None:
    rid = run(store, 1, params={"rate": 0.1, "acc": 0.2})
    assert values(store, rid) == {"rate": (0.1, False), "acc": (0.2, False)}
    store.add_metrics(rid, [("acc", [0.5, 0.7], None), ("loss", 3, None)])
    store.add_metric(rid, "acc", 0.9)
    store.set_params(rid, {"acc": 0.0, "rate": 0.3})  # a param never hides the metric
    store.add_metrics(rid, [("bad", float("nan"), None)])  # not JSON: neither number nor text
    got = values(store, rid)
    assert got.pop("bad")[1] is True  # NaN: recorded, and the logging did not fail
    assert got == {"rate": (0.3, False), "acc": (0.9, True), "loss": (3, True)}
    row = store._db.execute("SELECT num, txt FROM run_values WHERE run_id=? AND name='bad'",
                            (rid,)).fetchone()
    assert tuple(row) == (None, None)
    last = store.last_metrics()[rid]
    del last["bad"]
    assert last == {"acc": (0.9, True), "loss": (3, False)}  # a series: logged 3 times
    store.set_status(rid, RunStatus.COMPLETED)
    assert store.delete(rid)
    assert store._db.execute("SELECT COUNT(*) FROM run_values").fetchone()[0] == 0


def test_an_older_store_is_filled_once_as_it_opens(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)  # the tables as a labdeck before run_values made them
    conn.execute("INSERT INTO runs (id, project, target, target_type, status, created)"
                 " VALUES ('r1', 'p', 'local', 'local', 'completed', 1)")
    conn.executemany("INSERT INTO metrics (run_id, name, seq, value, series, ts)"
                     " VALUES ('r1', ?, ?, ?, 0, 0)",
                     [("acc", 0, "0.5"), ("acc", 1, "0.8"), ("kind", 0, '"tree"')])
    conn.executemany("INSERT INTO params (run_id, name, value) VALUES ('r1', ?, ?)",
                     [("acc", "0.1"), ("depth", "3")])
    conn.commit()
    conn.close()
    store = RunStore(path)
    assert values(store, "r1") == {"acc": (0.8, True), "kind": ("tree", True),
                                   "depth": (3, False)}
    assert [r.id for r in select_runs(store, RunFilter(where=parse_where(
        "acc > 0.7 and kind = tree and depth = 3")))] == ["r1"]
    store.add_metric("r1", "acc", 0.2)  # the triggers came with the table
    assert values(store, "r1")["acc"] == (0.2, True)


def test_sorted_selection_best_first_missing_last_newest_first_among_equals(
        store: RunStore) -> None:
    a = run(store, 1, params={"acc": 0.5, "k": "x"})
    b = run(store, 2, params={"acc": 0.9, "k": "y"})
    c = run(store, 3, params={"acc": 0.5, "k": "x"})
    d = run(store, 4, params={"k": "x"})
    e = run(store, 5, params={"acc": "high", "k": "x"})  # not a number: with the missing

    def ids(sort: str | None, where: str | None = None, limit: int | None = None) -> list[str]:
        flt = RunFilter(where=None if where is None else parse_where(where))
        return [r.id for r in select_runs(store, flt, sort, limit)]

    assert ids("acc") == [b, c, a, e, d]
    assert ids("acc:asc") == [c, a, b, e, d]
    assert ids("acc", limit=2) == [b, c]
    assert ids("acc", limit=4) == [b, c, a, e]
    assert ids("acc", "k = x") == [c, a, e, d]
    assert ids("acc", "not acc > 0.6", limit=3) == [c, a, e]
    assert ids(None, "acc >= 0.5") == [c, b, a]


def plan(store: RunStore, sql: str, args: list[object]) -> str:
    return " | ".join(row[3] for row in store._db.execute(f"EXPLAIN QUERY PLAN {sql}", args))


def test_conditions_and_sorts_read_indexes_not_every_run(store: RunStore) -> None:
    """What lets 100,000 runs answer in milliseconds (bench/bench_history_scale.py measures
    it): no correlated lookup per run, and a sort walks the (name, value) index."""
    for i in range(50):
        run(store, i, params={"acc": i / 50})
    store._db.execute("ANALYZE")
    where, args = RunFilter(where=parse_where("acc > 0.5 and not acc > 0.9")).sql()
    listed = plan(store, f"SELECT * FROM runs WHERE {where} ORDER BY created DESC LIMIT 20",
                  args)
    assert "CORRELATED" not in listed and "run_values_num" in listed, listed
    sorted_sql = ("SELECT runs.* FROM run_values AS s JOIN runs ON runs.id = s.run_id"
                  " WHERE s.name = ? AND s.num IS NOT NULL ORDER BY s.num DESC,"
                  " runs.created DESC LIMIT 20")
    by_value = plan(store, sorted_sql, ["acc"])
    assert by_value.startswith("SEARCH s USING") and "run_values_num" in by_value, by_value
    assert "TEMP B-TREE FOR ORDER BY" not in by_value, by_value


@pytest.mark.parametrize("where", [
    "acc > 0.3", "acc >= 0 and k = x", "not acc > 0.5", "k != x or acc < 0.2",
    "not (acc > 0.2 and k = y)", "acc = 'high'", "missing > 1", "not missing > 1",
])
def test_both_ways_of_reading_a_comparison_select_the_same_runs(store: RunStore,
                                                                where: str) -> None:
    for i in range(30):
        run(store, i, params={"acc": i / 30, "k": "xy"[i % 2]} if i % 7 else {"acc": "high"})
    flt = RunFilter(where=parse_where(where))
    got = []
    for broad in (lambda c: True, lambda c: False, store.broad_test(5), store.broad_test(None)):
        sql, args = flt.sql(broad)
        got.append([r.id for r in store.select(sql, args)])
    assert got[0] == got[1] == got[2] == got[3]
    assert got[0] == [r.id for r in select_runs(store, flt)]


def test_rows_put_in_by_sql_are_found_after_rebuild_values(store: RunStore) -> None:
    rid = run(store, 1)
    store._db.execute("INSERT INTO metrics (run_id, name, seq, value, series, ts)"
                      " VALUES (?, 'acc', 0, '0.7', 0, 0)", (rid,))
    flt = RunFilter(where=parse_where("acc > 0.5"))
    assert select_runs(store, flt) == []
    store.rebuild_values()
    assert [r.id for r in select_runs(store, flt)] == [rid]


def test_runs_in_flight_are_found_through_the_status_index(store: RunStore) -> None:
    """Every read verb first looks for runs in flight (recover): with 100,000 ended runs,
    statistics that say 'two statuses, half each' made the planner read every run."""
    for i in range(40):
        rid = run(store, i)
        store.set_status(rid, RunStatus.COMPLETED if i % 2 else RunStatus.FAILED)
    flying = run(store, 100)
    store._db.execute("ANALYZE")
    seen: list[str] = []
    store._db.set_trace_callback(seen.append)
    assert [r.id for r in store.active()] == [flying]
    store._db.set_trace_callback(None)
    query = next(sql for sql in seen if sql.startswith("SELECT"))
    used = plan(store, query, [])
    assert "USING INDEX runs_status" in used and "SCAN runs" not in used, used
