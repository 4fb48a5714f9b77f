"""Run history at scale: 100,000 runs in the store, then ``runs list -n 20`` plain, with
``--where`` conditions and with ``--sort METRIC``, each side by side with sqlite3 reading the
same rows from the same file (issue 12, item 9; goal: each labdeck command under 200 ms).

Comparisons per query, alternated round by round (the command's CPU time, user + system, is
the figure to read on a busy machine, where wall times grow with the others' load):
- the whole command: ``labdeck runs list -n 20 ... -o json`` vs the ``sqlite3`` CLI and vs a
  ``python -c`` using sqlite3, each running a plain hand-written query over the same tables
  (all pay a process start; Python's alone is ~10 ms of CPU);
- in this process: labdeck's query (``query.select_runs``, what the CLI calls: records with
  their metrics, params and tags) vs Python's sqlite3 running that plain query.
Both sides must return the same run ids (checked once per query).

The store is filled directly through RunStore's connection (one transaction, then
``rebuild_values``): each run has a scalar ``accuracy``, a five-value ``loss`` series, params
``rate`` and ``kernel`` and a tag.

    .venv/bin/python bench/bench_history_scale.py [--runs N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends.query import RunFilter, parse_where, select_runs
from backends.store import RunStore
from bench._common import byte_compile, labdeck_cli, median, ms, report

# (name, labdeck's arguments, the plain query a person would type into sqlite3)
LAST_LOSS = ("(SELECT CAST(m.value AS REAL) FROM metrics AS m WHERE m.run_id = r.id AND"
             " m.name = 'loss' ORDER BY m.seq DESC LIMIT 1)")
ACC = ("(SELECT CAST(m.value AS REAL) FROM metrics AS m WHERE m.run_id = r.id AND"
       " m.name = 'accuracy' ORDER BY m.seq DESC LIMIT 1)")
QUERIES = [
    ("list -n 20", [],
     "SELECT r.id FROM runs AS r ORDER BY r.created DESC LIMIT 20"),
    ("--where 'accuracy > 0.9'", ["--where", "accuracy > 0.9"],
     f"SELECT r.id FROM runs AS r WHERE {ACC} > 0.9 ORDER BY r.created DESC LIMIT 20"),
    ("--where 'accuracy > 0.999 and kernel = rbf'",
     ["--where", "accuracy > 0.999 and kernel = rbf"],
     f"SELECT r.id FROM runs AS r WHERE {ACC} > 0.999 AND (SELECT json_extract(p.value, '$')"
     " FROM params AS p WHERE p.run_id = r.id AND p.name = 'kernel') = 'rbf'"
     " ORDER BY r.created DESC LIMIT 20"),
    ("--where 'accuracy >= 0' (every run)", ["--where", "accuracy >= 0"],
     f"SELECT r.id FROM runs AS r WHERE {ACC} >= 0 ORDER BY r.created DESC LIMIT 20"),
    ("--where 'loss < 0.0001' (rare)", ["--where", "loss < 0.0001"],
     f"SELECT r.id FROM runs AS r WHERE {LAST_LOSS} < 0.0001 ORDER BY r.created DESC LIMIT 20"),
    ("--sort accuracy", ["--sort", "accuracy"],
     f"SELECT r.id FROM runs AS r ORDER BY {ACC} DESC NULLS LAST, r.created DESC LIMIT 20"),
    ("--where 'rate >= 0.5' --sort accuracy:asc", ["--where", "rate >= 0.5", "--sort",
                                                   "accuracy:asc"],
     f"SELECT r.id FROM runs AS r WHERE (SELECT CAST(p.value AS REAL) FROM params AS p"
     f" WHERE p.run_id = r.id AND p.name = 'rate') >= 0.5"
     f" ORDER BY {ACC} ASC NULLS LAST, r.created DESC LIMIT 20"),
]


def populate(root: Path, n: int) -> None:
    (root / "aml_config").mkdir(parents=True)
    (root / "aml_config" / "local.compute").write_text('type: "local"\n')
    store = RunStore(root / ".labdeck" / "runs.db")
    rng = random.Random(12)
    base = time.time() - n * 60
    runs, metrics, params, tags = [], [], [], []
    for i in range(n):
        rid = f"proj_{int((base + i * 60) * 1000)}"
        status = "failed" if i % 17 == 0 else "completed"
        runs.append((rid, "proj", "local", "local", None, "train.py", "[]", "{}", status,
                     base + i * 60, base + i * 60 + 1, base + i * 60 + 30, 0 if status ==
                     "completed" else 1, "[]", "[]"))
        acc = round(rng.random(), 6)
        metrics.append((rid, "accuracy", 0, json.dumps(acc), 0, base + i * 60 + 29))
        loss = rng.random()
        for seq in range(5):
            loss *= rng.random()
            metrics.append((rid, "loss", seq, json.dumps(loss), 1, base + i * 60 + seq))
        params.append((rid, "rate", json.dumps(round(rng.random(), 3))))
        params.append((rid, "kernel", json.dumps(rng.choice(["rbf", "linear", "poly"]))))
        tags.append((rid, "team", rng.choice(["nlp", "vision"])))
    with store._tx() as db:
        db.executemany(
            "INSERT INTO runs (id, project, target, target_type, runconfig, script, args, env,"
            " status, created, started, ended, exit_code, outputs, capabilities)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", runs)
        db.executemany("INSERT INTO metrics (run_id, name, seq, value, series, ts)"
                       " VALUES (?,?,?,?,?,?)", metrics)
        db.executemany("INSERT INTO params (run_id, name, value) VALUES (?,?,?)", params)
        db.executemany("INSERT INTO tags (run_id, name, value) VALUES (?,?,?)", tags)
    store.rebuild_values()  # rows put in by SQL, not through the store's methods
    store._db.execute("ANALYZE")
    store.close()


def labdeck_ids(store: RunStore, args: list[str]) -> list[str]:
    """What ``runs list`` does for these arguments, in this process."""
    where = args[args.index("--where") + 1] if "--where" in args else None
    sort = args[args.index("--sort") + 1] if "--sort" in args else None
    run_filter = RunFilter(where=None if where is None else parse_where(where))
    return [r.id for r in select_runs(store, run_filter, sort, 20)]


def plain_ids(conn: sqlite3.Connection, sql: str) -> list[str]:
    return [row[0] for row in conn.execute(sql)]


def cli_ids(root: Path, args: list[str]) -> list[str]:
    out = subprocess.run([labdeck_cli(), "runs", "list", "-n", "20", *args, "-o", "json"],
                         cwd=root, capture_output=True, text=True, check=True).stdout
    return [r["id"] for r in json.loads(out)]


def clock(func: object, *args: object) -> float:
    start = time.perf_counter()
    func(*args)  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    opts = parser.parse_args()
    compiled = byte_compile()
    root = Path(tempfile.mkdtemp(prefix="labdeck-bench-history-"))
    try:
        start = time.perf_counter()
        populate(root, opts.runs)
        db_path = root / ".labdeck" / "runs.db"
        lines = [f"{opts.runs:,} runs, {db_path.stat().st_size / 1e6:.0f} MB store, filled in"
                 f" {time.perf_counter() - start:.1f} s; medians of {opts.rounds} rounds"
                 + ("" if compiled else " (not byte-compiled)")]
        store = RunStore(db_path)
        conn = sqlite3.connect(db_path)
        sqlite_cli = shutil.which("sqlite3")
        for name, args, sql in QUERIES:
            sql = sql.replace("SELECT r.id FROM", "SELECT r.* FROM")  # whole rows, as labdeck reads
            ours = labdeck_ids(store, args)
            theirs = plain_ids(conn, sql)
            if ours != theirs or cli_ids(root, args) != ours:
                raise SystemExit(f"{name}: labdeck and sqlite3 disagree:\n{ours}\n{theirs}")
            cmd_ours = [labdeck_cli(), "runs", "list", "-n", "20", *args, "-o", "json"]
            cmd_theirs = [sqlite_cli, "-json", str(db_path), sql] if sqlite_cli else [
                sys.executable, "-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]);"
                " print(c.execute(sys.argv[2]).fetchall())", str(db_path), sql]
            cmd_python = [sys.executable, "-c", "import json, sqlite3, sys;"
                          " c = sqlite3.connect(sys.argv[1]);"
                          " print(json.dumps([list(r) for r in c.execute(sys.argv[2])]))",
                          str(db_path), sql]
            t_ours, t_theirs, c_ours, c_theirs, c_python = [], [], [], [], []
            for _ in range(opts.rounds):
                t_ours.append(clock(labdeck_ids, store, args))
                t_theirs.append(clock(plain_ids, conn, sql))
                c_ours.append(_run(cmd_ours, root))
                c_theirs.append(_run(cmd_theirs, root))
                c_python.append(_run(cmd_python, root))
            cpu_ours = median(CPU[" ".join(cmd_ours)])
            cpu_python = median(CPU[" ".join(cmd_python)])
            lines.append(
                f"{name:44} command CPU {ms(cpu_ours):>8} vs python -c sqlite3 {ms(cpu_python):>8}"
                f" ({cpu_ours / cpu_python:5.2f}x);"
                f" wall {ms(median(c_ours)):>9} vs sqlite3 CLI"
                f" {ms(median(c_theirs)):>8} ({median(c_ours) / median(c_theirs):5.2f}x),"
                f" vs python -c sqlite3 {ms(median(c_python)):>8}"
                f" ({median(c_ours) / median(c_python):5.2f}x);"
                f" query {ms(median(t_ours)):>8} vs python sqlite3 {ms(median(t_theirs)):>8}"
                f" ({median(t_ours) / median(t_theirs):5.2f}x)")
        conn.close()
        store.close()
        report("runs list on a 100k-run store (labdeck vs sqlite3 on the same rows)", lines)
    finally:
        shutil.rmtree(root, ignore_errors=True)


CPU: dict[str, list[float]] = {}  # the CPU seconds (user + system) of each command, by its line


def _run(cmd: list[str], cwd: Path) -> float:
    """Wall seconds of ``cmd``; its CPU seconds go to ``CPU`` (a figure the machine's other
    load inflates far less than wall time)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.setdefault(" ".join(cmd), []).append(after.ru_utime + after.ru_stime
                                             - before.ru_utime - before.ru_stime)
    return wall


if __name__ == "__main__":
    main()
