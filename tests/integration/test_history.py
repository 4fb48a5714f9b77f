"""Run history through the real CLI and real runs: names, tags, params, queries, delete and
prune, sweeps (issue 12, items 2-5)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import Project

TRAIN = """
    import argparse, time
    from labdeck_metrics import log_metric, log_param, set_tag
    p = argparse.ArgumentParser()
    p.add_argument("--rate", type=float, default=0.5)
    p.add_argument("--depth", type=int, default=1)
    p.add_argument("--trace", default=None)
    p.add_argument("--sleep", type=float, default=0)
    a = p.parse_args()
    if a.trace:
        open(a.trace, "a").write(f"start {time.time()}\\n")
    time.sleep(a.sleep)
    log_param("depth seen", a.depth)
    set_tag("kind", "tree")
    log_metric("DTree Accuracy", round(1 - abs(a.rate - 0.1) / a.depth, 4))
    if a.trace:
        open(a.trace, "a").write(f"end {time.time()}\\n")
"""


@pytest.fixture
def train(project: Project) -> Project:
    project.write("train.py", TRAIN)
    return project


def submit(project: Project, *args: str) -> str:
    return project.cli("submit", *args, check=True).stdout.splitlines()[0]


def listed(project: Project, *args: str) -> list[dict]:
    return json.loads(project.cli("runs", "list", *args, "-o", "json", check=True).stdout)


def test_name_tags_note_params_and_the_verbs_that_change_them(train: Project) -> None:
    rid = submit(train, "--name", "baseline", "--tag", "team=vision", "--note", "first try",
                 "train.py", "--rate", "0.3")
    shown = json.loads(train.cli("runs", "show", "baseline", "-o", "json", check=True).stdout)
    assert shown["id"] == rid and shown["name"] == "baseline" and shown["note"] == "first try"
    assert shown["tags"] == {"team": "vision", "kind": "tree"}  # --tag and the script's set_tag
    assert shown["params"] == {"depth seen": 1}  # log_param
    assert shown["metrics"] == {"DTree Accuracy": 0.8}
    assert shown["args"] == ["--rate", "0.3"]  # after the script: the script's, not ours
    taken = train.cli("submit", "--name", "baseline", "train.py")
    assert taken.returncode == 2 and "taken by run" in taken.stderr
    assert len(listed(train)) == 1
    train.cli("runs", "tag", "baseline", "stage=prod", "x", check=True)
    train.cli("runs", "untag", rid, "x", check=True)
    train.cli("runs", "note", "baseline", "kept", check=True)
    train.cli("runs", "rename", "baseline", "champion", check=True)
    text = train.cli("runs", "show", "champion", check=True).stdout
    for line in ("name:      champion", "note:      kept", "  depth seen: 1",
                 "tags:      kind=tree, stage=prod, team=vision"):
        assert line in text
    assert train.cli("runs", "show", "baseline").returncode == 2
    other = submit(train, "train.py", "--rate", "0.1")
    compared = train.cli("runs", "compare", "champion", other, check=True).stdout
    assert "param depth seen" in compared and "champion" in compared


def test_list_filters_where_sort_csv_and_best(train: Project) -> None:
    slow = submit(train, "--tag", "team=nlp", "train.py", "--rate", "1")
    fast = submit(train, "train.py", "--rate", "0.1", "--depth", "2")
    mid = submit(train, "train.py", "--rate", "0.3")
    train.write("fail.py", "raise SystemExit(3)\n")
    train.cli("submit", "fail.py")
    by = [r["id"] for r in listed(train, "--where", "DTree Accuracy > 0.5",
                                  "--sort", "DTree Accuracy")]
    assert by == [fast, mid]
    assert [r["id"] for r in listed(train, "--sort", "DTree Accuracy:asc",
                                    "--script", "train.py")] == [slow, mid, fast]
    assert [r["id"] for r in listed(train, "--where", "depth seen = 2 or DTree Accuracy < 0.5"
                                    )] == [fast, slow]
    assert [r["id"] for r in listed(train, "--tag", "team=nlp")] == [slow]
    assert [r["status"] for r in listed(train, "--status", "failed")] == ["failed"]
    assert len(listed(train, "--since", "1h", "--target", "local")) == 4
    assert listed(train, "--target", "docker") == []
    table = train.cli("runs", "list", "--sort", "DTree Accuracy", check=True).stdout
    assert table.splitlines()[0].split()[-2:] == ["ACCURACY", "METRICS"]
    assert table.splitlines()[1].startswith(fast)
    csv_lines = train.cli("runs", "list", "-o", "csv", "--script", "train.py",
                          check=True).stdout.splitlines()
    assert csv_lines[0].endswith("param:depth seen,DTree Accuracy") and len(csv_lines) == 4
    best = json.loads(train.cli("runs", "best", "DTree Accuracy", "-o", "json",
                                check=True).stdout)
    assert best["id"] == fast
    worst = train.cli("runs", "best", "DTree Accuracy", "--asc", check=True).stdout
    assert worst.startswith(f"id:        {slow}")
    bad = train.cli("runs", "list", "--where", "DTree Accuracy >> 1")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "labdeck: error: --where: expected a value after '>' at position 17:"
        " 'DTree Accuracy >> 1'"]
    assert train.cli("runs", "best", "nothing").returncode == 2


def test_delete_and_prune_free_what_the_dry_run_promised(train: Project) -> None:
    ids = [submit(train, "train.py", "--rate", str(i / 10)) for i in range(6)]
    (train.root / ".labdeck" / "runs" / ids[0] / "outputs").mkdir(exist_ok=True)
    (train.root / ".labdeck" / "runs" / ids[0] / "outputs" / "model.bin").write_bytes(
        b"m" * 300_000)
    live = train.popen("submit", "train.py", "--sleep", "60")
    try:
        live_id = live.stdout.readline().strip() if live.stdout else ""
        assert live_id
        dry = train.cli("runs", "prune", "--keep-last", "2", "--dry-run", check=True)
        promised = dry.stderr.strip().splitlines()[-1]
        # The newest two are the live run and ids[5]; the live one is never pruned anyway.
        assert [line.split()[2] for line in dry.stdout.splitlines()] == ids[4::-1]
        assert promised.startswith("would delete 5 run(s), freeing ")
        done = train.cli("runs", "prune", "--keep-last", "2", check=True)
        assert done.stderr.strip().splitlines()[-1] == promised.replace(
            "would delete", "deleted").replace("freeing", "freed")
        assert promised.endswith(" KB") and float(promised.split()[-2]) > 300_000 / 1024
        left = {r["id"] for r in listed(train)}
        assert left == {live_id, ids[5]}
        for rid in ids[:5]:
            assert not (train.root / ".labdeck" / "runs" / rid).exists()
        refused = train.cli("runs", "delete", live_id)
        assert refused.returncode == 2 and "cancel it first" in refused.stderr
        assert train.cli("runs", "prune", "--status", "running").stderr.strip() == (
            "nothing to delete")
        assert train.cli("runs", "prune").returncode == 2  # says what to prune
        train.cli("runs", "delete", ids[5], check=True)
        assert train.cli("runs", "show", ids[5]).returncode == 2
    finally:
        train.cli("runs", "cancel", *[r["id"] for r in listed(train, "--status", "active")])
        live.wait(timeout=60)


def overlap(trace: Path) -> int:
    events = []
    for line in trace.read_text().splitlines():
        kind, ts = line.split()
        events.append((float(ts), 1 if kind == "start" else -1))
    most = now = 0
    for _ts, step in sorted(events, key=lambda e: (e[0], e[1])):
        now += step
        most = max(most, now)
    return most


def test_sweep_grid_parallel_sorted_and_recorded(train: Project, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    res = train.cli("sweep", "-c", "local", "train.py", "--grid", "rate=0.01,0.1,1",
                    "--grid", "depth=1,2", "--parallel", "2", "--sort", "DTree Accuracy",
                    "--", "--trace", str(trace), "--sleep", "0.3", timeout=300)
    assert res.returncode == 0, res.stderr
    sweep_id = res.stdout.splitlines()[0]
    assert sweep_id.startswith("sweep_")
    assert overlap(trace) == 2  # in parallel, never more than two
    rows = res.stdout.splitlines()[1:]
    assert rows[0].split()[:5] == ["ID", "STATUS", "depth", "depth", "seen"]
    best_first = [row.split()[-2] for row in rows[1:]]
    assert best_first == sorted(best_first, key=float, reverse=True) and len(best_first) == 6
    shown = json.loads(train.cli("sweep", "show", sweep_id, "-o", "json",
                                 "--sort", "DTree Accuracy:asc", check=True).stdout)
    assert shown["total"] == 6 and len(shown["runs"]) == 6
    first = shown["runs"][0]
    assert first["params"] == {"rate": 1, "depth": 1, "depth seen": 1}
    assert first["args"] == ["--trace", str(trace), "--sleep", "0.3", "--rate", "1",
                             "--depth", "1"]
    assert [r["id"] for r in listed(train, "--sweep", sweep_id, "--where", "rate = 1")] == [
        r["id"] for r in shown["runs"] if r["params"]["rate"] == 1][::-1]


def test_random_sweep_is_seeded_and_cancel_stops_a_whole_sweep(train: Project) -> None:
    res = train.cli("sweep", "train.py", "--random", "rate=0.001:1:log", "--count", "2",
                    "--seed", "5", timeout=300)
    assert res.returncode == 0, res.stderr
    again = train.cli("sweep", "train.py", "--random", "rate=0.001:1:log", "--count", "2",
                      "--seed", "5", "--parallel", "2", timeout=300)
    runs_of = [json.loads(train.cli("sweep", "show", out.stdout.splitlines()[0], "-o", "json",
                                    check=True).stdout)["runs"] for out in (res, again)]
    assert [r["params"]["rate"] for r in runs_of[0]] == [r["params"]["rate"]
                                                         for r in runs_of[1]]
    sweeping = train.popen("sweep", "train.py", "--grid", "rate=0.1,0.2,0.3,0.4", "--",
                           "--sleep", "60")
    assert sweeping.stdout is not None
    sweep_id = sweeping.stdout.readline().strip()
    deadline = time.monotonic() + 60
    while not listed(train, "--sweep", sweep_id, "--status", "running"):
        assert time.monotonic() < deadline, "the sweep's first run never started"
        time.sleep(0.1)
    train.cli("sweep", "cancel", sweep_id, check=True)
    assert sweeping.wait(timeout=120) == 1
    runs = listed(train, "--sweep", sweep_id)
    assert [r["status"] for r in runs] == ["canceled"]  # one in flight; the rest never ran
    text = train.cli("sweep", "show", sweep_id, check=True).stdout
    assert "1 of 4 run(s): 1 canceled (canceled)" in text


def test_sweep_tags_and_names_its_runs_through_submits_meta(train: Project) -> None:
    res = train.cli("sweep", "train.py", "--grid", "rate=0.1,1", "--tag", "team=nlp",
                    "--name", "lr", timeout=300)
    assert res.returncode == 0, res.stderr
    runs = listed(train, "--sweep", res.stdout.splitlines()[0], "--sort", "rate:asc")
    assert [(r["name"], r["params"]["rate"]) for r in runs] == [("lr-1", 0.1), ("lr-2", 1)]
    assert all(r["tags"] == {"team": "nlp", "kind": "tree"} for r in runs)
    again = train.cli("sweep", "train.py", "--grid", "rate=0.5", "--name", "lr")
    assert again.returncode == 2 and "lr-1 is taken by run" in again.stderr
    assert len(listed(train)) == 2  # refused before any run
