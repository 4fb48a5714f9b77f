"""Run metadata, queries, deletes and sweep points on a real store (SQLite file), no processes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from backends import metrics
from backends.errors import RunNotFound, UsageError
from backends.history import check_name, parse_tags, scalar, select_delete, select_prune
from backends.query import QueryError, RunFilter, order_sql, parse_when, parse_where
from backends.status import RunStatus
from backends.store import RunMeta, RunStore
from backends.sweep import parse_grid, parse_random, point_args, points
from tui.submitting import plain_submit


def make(store: RunStore, acc: float | None, status: RunStatus = RunStatus.COMPLETED,
         **meta: object) -> str:
    rec = store.create("p", "local", "local", runconfig=None, script="src/train.py", args=[],
                       env={}, meta=RunMeta(**meta))  # type: ignore[arg-type]
    if acc is not None:
        store.add_metrics(rec.id, [("DTree Accuracy", [acc / 2, acc], None)])
    store.set_status(rec.id, status)
    return rec.id


def ids(store: RunStore, where: str = "", sort: str | None = None, **flt: object) -> list[str]:
    run_filter = RunFilter(where=parse_where(where) if where else None, **flt)  # type: ignore
    sql, args = run_filter.sql()
    order, order_args = order_sql(sort)
    return [r.id for r in store.select(sql, [*args, *order_args], order)]


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "runs.db")


def test_where_compares_last_metric_values_then_params(store: RunStore) -> None:
    a = make(store, 0.5, params={"opt": "sgd", "rate": 0.1})
    b = make(store, 0.95, params={"opt": "adam", "rate": 1})
    c = make(store, None, params={"opt": "adam", "DTree Accuracy": 0.99})  # a param, no metric
    assert ids(store, "DTree Accuracy > 0.9") == [c, b]  # the series' last value, not its first
    assert ids(store, "DTree Accuracy > 0.9 and opt = adam and rate >= 1") == [b]
    assert ids(store, "opt = 'sgd' or (rate > 0.5 and not opt != adam)") == [b, a]
    assert ids(store, "`DTree Accuracy` < 0.6") == [a]
    assert ids(store, "opt > 1") == []  # text is not a number: no match, no error
    assert ids(store, "rate = '1'") == []  # a number is not text
    assert ids(store, "", sort="DTree Accuracy") == [c, b, a]
    assert ids(store, "", sort="DTree Accuracy:asc") == [a, b, c]
    d = make(store, None)
    assert ids(store, "", sort="DTree Accuracy:asc")[-1] == d  # without it: last either way
    assert ids(store, "", sort="DTree Accuracy")[-1] == d


@pytest.mark.parametrize(("text", "pos", "says"), [
    ("DTree Accuracy >", 17, "expected a value"),
    ("> 3", 1, "expected a metric or param name"),
    ("a > 1 and", 10, "expected a metric or param name"),
    ("(a > 1", 7, "expected ')'"),
    ("a ! 1", 3, "'!' must be '!='"),
    ("a > 'x", 5, "unclosed '"),
    ("a 1", 4, "expected an operator"),
    ("a > 1 b", 7, "unexpected 'b'"),
    ("", 1, "empty condition"),
])
def test_bad_where_is_one_line_naming_the_position(text: str, pos: int, says: str) -> None:
    with pytest.raises(QueryError) as err:
        parse_where(text)
    message = str(err.value)
    assert f"at position {pos}" in message and says in message and "\n" not in message
    assert err.value.exit_code == 2


def test_filters_status_target_script_tag_since(store: RunStore) -> None:
    a = make(store, 0.1, tags={"team": "vision"})
    b = make(store, 0.2, status=RunStatus.FAILED, tags={"team": "nlp", "big": ""})
    assert ids(store, statuses=[RunStatus.FAILED]) == [b]
    assert ids(store, tags=[("team", "vision")]) == [a]
    assert ids(store, tags=[("big", None)]) == [b]
    assert ids(store, scripts=["train.py"]) == [b, a]  # a path's end
    assert ids(store, scripts=["src/*.py"]) == [b, a]
    assert ids(store, scripts=["rain.py"]) == []
    assert ids(store, targets=["docker"]) == []
    assert ids(store, since=store.get(b).created) == [b]
    assert parse_when("2d", "--since", now=1_000_000.0) == 1_000_000.0 - 2 * 86400
    with pytest.raises(UsageError, match="--since 'soon'"):
        parse_when("soon", "--since")


def test_names_are_aliases_unique_and_tags_params_notes_change(store: RunStore) -> None:
    a = make(store, 0.1, name="baseline", note="first try", tags={"k": "v"})
    assert store.find("baseline").id == a
    with pytest.raises(UsageError, match="taken by run"):
        make(store, 0.2, name="baseline")
    assert len(store.list_runs()) == 1  # the refused one recorded nothing
    with pytest.raises(UsageError, match="taken"):
        make(store, 0.2, name=a)  # a name may not shadow another run's id
    b = make(store, 0.3)
    with pytest.raises(UsageError, match="taken"):
        store.rename(b, "baseline")
    store.rename(a, "best")
    store.rename(b, "baseline")  # freed by the rename
    assert store.find("baseline").id == b and store.find("best").id == a
    store.set_tags(a, {"k": "w", "x": ""})
    assert store.remove_tags(a, ["x", "nope"]) == ["x"]
    store.set_note(a, "")
    rec = store.get(a)
    assert (rec.tags, rec.note, rec.name) == ({"k": "w"}, None, "best")
    assert rec.to_json()["tags"] == {"k": "w"}
    with pytest.raises(RunNotFound):
        store.set_tags("nope", {"a": "b"})
    with pytest.raises(UsageError):
        check_name("two words")
    assert parse_tags(["a=1", "b", "a=2"]) == {"a": "2", "b": ""}


def test_param_and_tag_records_travel_the_metric_channel_into_their_tables(
    store: RunStore,
) -> None:
    rid = make(store, None, status=RunStatus.RUNNING)
    lines = [metrics.encode("acc", 0.5), metrics.encode("rate", 0.1, metrics.PARAM),
             metrics.encode("kind", "tree", metrics.TAG), metrics.encode("rate", 0.2, "param")]
    # What the supervisor does with each parsed line (backends/supervisor.py _write_mixed).
    found: list[tuple[str, object, float | None]] = []
    shown = []
    for line in lines:
        parsed = metrics.parse(line)
        assert parsed is not None
        name, value = parsed
        found.append((name, value, None))
        shown.append(f"{name} = {value}")
    store.add_metrics(rid, found)
    rec = store.get(rid)
    assert rec.metrics == {"acc": 0.5}
    assert rec.params == {"rate": 0.2}  # the last one logged
    assert rec.tags == {"kind": "tree"}
    assert shown == ["acc = 0.5", "param rate = 0.1", "tag kind = tree", "param rate = 0.2"]
    assert metrics.parse(metrics.MARKER + '{"kind":"later","name":"x","value":1}') is None
    assert metrics.parse(metrics.MARKER + '{"kind":"param","name":"x","value":[1]}') is None
    shim = (metrics.SHIM_DIR / "labdeck_metrics.py").read_text()
    assert '"kind": "param"' in shim and '"kind": "tag"' in shim


def test_delete_is_guarded_and_prune_keeps_the_newest(store: RunStore, tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    made = [make(store, i / 10, params={"i": i}) for i in range(4)]
    live = make(store, None, status=RunStatus.RUNNING)
    for rid in [*made, live]:
        (runs_dir / rid).mkdir(parents=True)
        (runs_dir / rid / "log").write_bytes(b"x" * 10_000)
    assert not store.delete(live)  # SQL refuses: not terminal
    with pytest.raises(UsageError, match="cancel it first"):
        select_delete(store, runs_dir, [live])
    doomed = select_prune(store, runs_dir, RunFilter(), keep_last=2)
    # The newest two are the live run and made[3]: the live one counts and is spared anyway.
    assert [d.record.id for d in doomed] == [made[2], made[1], made[0]]
    assert all(d.size >= 10_000 for d in doomed)
    assert store.delete(made[0])
    assert not store.delete(made[0])  # gone already
    db = sqlite3.connect(store.db_path)
    for table in ("metrics", "params", "tags"):
        assert db.execute(f"SELECT COUNT(*) FROM {table} WHERE run_id=?", (made[0],)).fetchone()[
            0] == 0
    assert db.execute("SELECT COUNT(*) FROM params").fetchone()[0] == 3


def test_old_store_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE runs (id TEXT PRIMARY KEY, project TEXT NOT NULL, target TEXT NOT NULL,
          target_type TEXT NOT NULL, runconfig TEXT, script TEXT, args TEXT NOT NULL DEFAULT '[]',
          env TEXT NOT NULL DEFAULT '{}', status TEXT NOT NULL, created REAL NOT NULL,
          started REAL, ended REAL, exit_code INTEGER, error TEXT, snapshot TEXT,
          git_commit TEXT, outputs TEXT NOT NULL DEFAULT '[]', durable_ref TEXT,
          supervisor_pid INTEGER, cancel_requested INTEGER NOT NULL DEFAULT 0, trigger TEXT);
        INSERT INTO runs (id, project, target, target_type, status, created)
          VALUES ('p_1', 'p', 'local', 'local', 'completed', 1.0);
    """)
    db.close()
    store = RunStore(path)
    assert store.get("p_1").name is None
    rid = make(store, 0.5, name="new", sweep="sweep_1")
    assert store.find("new").sweep == "sweep_1" and store.get(rid).name == "new"


def test_sweep_points_grid_crossed_random_seeded() -> None:
    grid = [parse_grid("rate=0.01,0.1,1"), parse_grid("depth=2,4")]
    got = points(grid, [], None, 0)
    assert len(got) == 6 and got[0] == {"rate": 0.01, "depth": 2} and got[-1] == {"rate": 1,
                                                                                  "depth": 4}
    assert point_args({"rate": 0.01, "kind": "rbf", "x": True}) == [
        "--rate", "0.01", "--kind", "rbf", "--x", "true"]
    rand = [parse_random("lr=0.0001:1:log"), parse_random("layers=1:5")]
    one = points([], rand, 5, seed=7)
    assert one == points([], rand, 5, seed=7) and one != points([], rand, 5, seed=8)
    assert all(0.0001 <= p["lr"] <= 1 and p["layers"] in range(1, 6) for p in one)
    assert all(isinstance(p["layers"], int) for p in one)
    assert len(points(grid[:1], rand, 2, 1)) == 6
    for bad, says in [("rate", "NAME=V1"), ("rate=", "NAME=V1"), ("ra te=1", "NAME"),
                      ("rate=1,,2", "NAME=V1")]:
        with pytest.raises(UsageError, match=says):
            parse_grid(bad)
    with pytest.raises(UsageError, match="LOW must be"):
        parse_random("x=2:1")
    with pytest.raises(UsageError, match="needs --count"):
        points([], rand, None, 0)
    with pytest.raises(UsageError, match="swept twice"):
        points([parse_grid("a=1"), parse_grid("a=2")], [], None, 0)
    assert scalar("3") == 3 and scalar("1e-3") == 0.001 and scalar("rbf") == "rbf"


def test_plain_submit_leaves_metadata_options_to_click() -> None:
    for option in ("--name", "--tag", "--note"):
        assert plain_submit(["submit", option, "x", "train.py"]) is None
    # After the script they are the script's own arguments.
    assert plain_submit(["submit", "train.py", "--name", "x"]) == (
        "local", False, "train.py", ["--name", "x"])
