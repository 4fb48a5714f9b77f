"""The run store: embedded SQLite under ``<project>/.labdeck/runs.db``.

WAL mode and a busy timeout let the CLI, the dashboard and every run supervisor write at once.
A terminal status is final: every status update is guarded in SQL, so no writer can undo it.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ._records import dataclass, field
from .errors import RunNotFound, StorageError, UsageError
from .status import TERMINAL, RunStatus

TYPE_CHECKING = False  # importing typing costs ~3 ms of a submit; annotations need none
if TYPE_CHECKING:
    import sqlite3
    from typing import Any
else:
    try:  # sqlite3's own C module: the package adds only datetime adapters (never bound here)
        import _sqlite3 as sqlite3  # and importing datetime for them costs a submit ~2 ms
    except ImportError:  # another Python's layout
        import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    target TEXT NOT NULL,
    target_type TEXT NOT NULL,
    runconfig TEXT,
    script TEXT,
    args TEXT NOT NULL DEFAULT '[]',
    env TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    exit_code INTEGER,
    error TEXT,
    snapshot TEXT,
    git_commit TEXT,
    outputs TEXT NOT NULL DEFAULT '[]',
    durable_ref TEXT,
    supervisor_pid INTEGER,
    supervisor_start INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    trigger TEXT,
    capabilities TEXT NOT NULL DEFAULT '[]',
    name TEXT,
    note TEXT,
    sweep TEXT
);
CREATE INDEX IF NOT EXISTS runs_created ON runs(created);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(id),
    name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    value TEXT NOT NULL,
    series INTEGER NOT NULL DEFAULT 0,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id, name, seq);
CREATE TABLE IF NOT EXISTS params (
    run_id TEXT NOT NULL REFERENCES runs(id),
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS tags (
    run_id TEXT NOT NULL REFERENCES runs(id),
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE INDEX IF NOT EXISTS tags_name ON tags(name, value);
CREATE TABLE IF NOT EXISTS sweeps (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    target TEXT NOT NULL,
    script TEXT NOT NULL,
    spec TEXT NOT NULL DEFAULT '{}',
    total INTEGER NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
"""
# On the columns _migrate adds (a store made before them has the tables above but not these).
_INDEXES = """
CREATE UNIQUE INDEX IF NOT EXISTS runs_name ON runs(name) WHERE name IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_sweep ON runs(sweep) WHERE sweep IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_status ON runs(status, created);
"""
# Each run's value of each name as queries see it (``--where``, ``--sort``, the runs table): its
# metric's last value, else its param. Written by the store's own methods beside the values
# (once per name per batch: triggers, a write per value, made metric ingest 1.9x slower); a
# condition or a sort on a name is then an index range over (name, num), not a lookup per run.
# Rows written into metrics or params by other means: ``rebuild_values()``.
_VALUES_TABLE = """
CREATE TABLE IF NOT EXISTS run_values (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,         -- JSON, as in metrics and params
    num REAL,                    -- the value when it is a JSON number
    txt TEXT,                    -- the value when it is a JSON string
    metric INTEGER NOT NULL,     -- 1: a metric's last value (seq below); 0: a param's
    seq INTEGER NOT NULL,
    series INTEGER NOT NULL DEFAULT 0,  -- a metric logged as a list or more than once
    PRIMARY KEY (run_id, name)
) WITHOUT ROWID;
"""
_VALUES_INDEXES = """
CREATE INDEX IF NOT EXISTS run_values_num ON run_values(name, num) WHERE num IS NOT NULL;
CREATE INDEX IF NOT EXISTS run_values_txt ON run_values(name, txt) WHERE txt IS NOT NULL;
"""
# A value that is not valid JSON (json.dumps writes NaN as NaN) is neither number nor text.
_NUM = ("CASE WHEN NOT json_valid({v}) THEN NULL WHEN json_type({v}) IN ('integer', 'real')"
        " THEN CAST({v} AS REAL) END")
_TXT = ("CASE WHEN NOT json_valid({v}) THEN NULL WHEN json_type({v}) = 'text'"
        " THEN json_extract({v}, '$') END")
# Triggers an earlier version of this table was kept by (dropped: see above).
_OLD_TRIGGERS = "".join(f"DROP TRIGGER IF EXISTS {name};" for name in (
    "run_values_metric", "run_values_param", "run_values_param_set", "run_values_run_gone"))
# A store made before run_values: fill it once from what it holds (the params first, then each
# metric's last value over them).
_VALUES_FILL = f"""
DELETE FROM run_values;
INSERT OR REPLACE INTO run_values (run_id, name, value, num, txt, metric, seq, series)
    SELECT run_id, name, value, {_NUM.format(v="value")}, {_TXT.format(v="value")}, 0, 0, 0
    FROM params;
INSERT OR REPLACE INTO run_values (run_id, name, value, num, txt, metric, seq, series)
    SELECT m.run_id, m.name, m.value, {_NUM.format(v="m.value")}, {_TXT.format(v="m.value")},
           1, m.seq, c.series OR c.n > 1
    FROM metrics AS m JOIN (SELECT run_id, name, MAX(seq) AS seq, COUNT(*) AS n,
                                   MAX(series) AS series FROM metrics GROUP BY run_id, name) AS c
    ON m.run_id = c.run_id AND m.name = c.name AND m.seq = c.seq;
"""

_TERMINAL_SQL = "(" + ",".join(f"'{s.value}'" for s in TERMINAL) + ")"
_ACTIVE_SQL = "(" + ",".join(f"'{s.value}'" for s in RunStatus if s not in TERMINAL) + ")"
# A metric record whose name carries this kind is a param or a tag (backends/metrics.py: Key).
PARAM, TAG = "param", "tag"


@dataclass
class RunMeta:
    """What a person (or a sweep) says about a run at submit: recorded with the run, atomically."""

    name: str | None = None
    note: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    sweep: str | None = None


@dataclass
class SweepRecord:
    id: str
    created: float
    target: str
    script: str
    spec: dict[str, Any]
    total: int
    cancel_requested: bool


@dataclass
class RunRecord:
    id: str
    project: str
    target: str
    target_type: str
    status: RunStatus
    created: float
    runconfig: str | None = None
    script: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    error: str | None = None
    snapshot: str | None = None
    git_commit: str | None = None
    outputs: list[str] = field(default_factory=list)
    durable_ref: str | None = None
    supervisor_pid: int | None = None
    supervisor_start: int | None = None  # /proc start time: tells a reused pid apart
    cancel_requested: bool = False
    trigger: list[str] = field(default_factory=list)
    capabilities: list[str] = field(default_factory=list)  # its backend's, for its compute
    metrics: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    note: str | None = None
    sweep: str | None = None
    tags: dict[str, str] = field(default_factory=dict)  # read with the metrics
    params: dict[str, Any] = field(default_factory=dict)  # read with the metrics

    def __init__(  # written out: one per row read, and the generic one binds ~10x slower
        self,
        id: str,
        project: str,
        target: str,
        target_type: str,
        status: RunStatus,
        created: float,
        runconfig: str | None = None,
        script: str | None = None,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        started: float | None = None,
        ended: float | None = None,
        exit_code: int | None = None,
        error: str | None = None,
        snapshot: str | None = None,
        git_commit: str | None = None,
        outputs: list[str] | None = None,
        durable_ref: str | None = None,
        supervisor_pid: int | None = None,
        supervisor_start: int | None = None,
        cancel_requested: bool = False,
        trigger: list[str] | None = None,
        capabilities: list[str] | None = None,
        metrics: dict[str, Any] | None = None,
        name: str | None = None,
        note: str | None = None,
        sweep: str | None = None,
        tags: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ):
        self.id = id
        self.project = project
        self.target = target
        self.target_type = target_type
        self.status = status
        self.created = created
        self.runconfig = runconfig
        self.script = script
        self.args = [] if args is None else args
        self.env = {} if env is None else env
        self.started = started
        self.ended = ended
        self.exit_code = exit_code
        self.error = error
        self.snapshot = snapshot
        self.git_commit = git_commit
        self.outputs = [] if outputs is None else outputs
        self.durable_ref = durable_ref
        self.supervisor_pid = supervisor_pid
        self.supervisor_start = supervisor_start
        self.cancel_requested = cancel_requested
        self.trigger = [] if trigger is None else trigger
        self.capabilities = [] if capabilities is None else capabilities
        self.metrics = {} if metrics is None else metrics
        self.name = name
        self.note = note
        self.sweep = sweep
        self.tags = {} if tags is None else tags
        self.params = {} if params is None else params

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended or time.time()) - self.started

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status.value,
            "target": self.target,
            "script": self.script,
            "args": self.args,
            "created": _iso(self.created),
            "started": _iso(self.started),
            "ended": _iso(self.ended),
            "exit_code": self.exit_code,
            "metrics": self.metrics,
            "params": self.params,
            "tags": self.tags,
            "note": self.note,
            "sweep": self.sweep,
            "outputs": self.outputs,
            "snapshot": self.snapshot,
            "commit": self.git_commit,
            "error": self.error,
            "env": self.env,
            "runconfig": self.runconfig,
            "target_type": self.target_type,
        }


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    ms = round(ts * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{ms:03d}Z"


class RunStore:
    """One store object per process and project; each thread gets its own SQLite connection
    (WAL is made for that): one connection shared by threads interleaves their transactions
    ("cannot start a transaction within a transaction") and can commit a run whose caller then
    sees an error."""

    def __init__(self, db_path: Path):
        self.db_path = db_path
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._lock = threading.Lock()
        # Every open connection, by the holder its thread keeps: a thread that ends drops its
        # holder, whose finalizer closes the connection (Textual starts a thread per worker).
        self._open: dict[int, sqlite3.Connection] = {}
        self._generation = 0  # bumped by disconnect(): threads' old connections are stale
        self._ready = False
        self._db  # noqa: B018 -- connect now: a damaged file is reported where the store opens

    @property
    def _db(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        holder: _Holder | None = getattr(self._local, "holder", None)
        if holder is None or holder.generation != self._generation:
            holder = _Holder(self._connect(), self._generation)
            weakref.finalize(holder, self._forget, id(holder), holder.conn)
            with self._lock:
                self._open[id(holder)] = holder.conn
            self._local.holder = holder
        return holder.conn

    def _forget(self, key: int, conn: sqlite3.Connection) -> None:
        with self._lock:
            self._open.pop(key, None)
        conn.close()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.db_path, timeout=30, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA synchronous=NORMAL")
            with self._lock:
                if not self._ready:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.executescript(SCHEMA)
                    self._migrate(conn)
                    self._ready = True
        except sqlite3.DatabaseError as err:
            conn.close()
            if isinstance(err, sqlite3.OperationalError):
                raise  # locked, read-only, disk I/O: not the file's content
            raise StorageError(
                f"{self.db_path} is damaged ({err}): rebuild it from the run folders with "
                "'labdeck runs reindex' (the damaged file is kept beside it)"
            ) from None
        return conn

    def open_connections(self) -> int:
        with self._lock:
            return len(self._open)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Add columns that newer labdeck versions introduced to stores made by older ones."""
        have = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
        for column, decl in (
            ("supervisor_start", "INTEGER"),
            ("capabilities", "TEXT NOT NULL DEFAULT '[]'"),
            ("name", "TEXT"),
            ("note", "TEXT"),
            ("sweep", "TEXT"),
        ):
            if column not in have:
                conn.execute(f"ALTER TABLE runs ADD COLUMN {column} {decl}")
        conn.executescript(_INDEXES)
        fresh = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND"
                             " name='run_values'").fetchone() is None
        if fresh:  # made and filled in one transaction: no value missed
            conn.executescript(f"BEGIN IMMEDIATE; {_VALUES_TABLE} {_VALUES_FILL}"
                               f" {_VALUES_INDEXES} COMMIT;")
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type='trigger' AND"
                        " name LIKE 'run_values%'").fetchone() is not None:
            conn.executescript(_OLD_TRIGGERS)

    def rebuild_values(self) -> None:
        """Make ``run_values`` again from the metrics and params tables (after rows were put
        there other than through this class)."""
        self._db.executescript(f"BEGIN IMMEDIATE; {_VALUES_FILL} COMMIT;")

    def disconnect(self) -> None:
        """Close every thread's connection (before a fork: SQLite must not cross one); the
        store stays usable, each thread reconnecting on its next call."""
        with self._lock:
            conns, self._open = list(self._open.values()), {}
            self._generation += 1
        for conn in conns:
            conn.close()

    close = disconnect

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def data_version(self) -> int:
        """Changes when another connection commits: a cheap 'did anything change?' poll."""
        row = self._db.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    # ---------------------------------------------------------------- runs

    def create(
        self,
        project: str,
        target: str,
        target_type: str,
        *,
        runconfig: str | None,
        script: str | None,
        args: list[str],
        env: dict[str, str],
        trigger: list[str] | None = None,
        run_id: str | None = None,
        created: float | None = None,
        snapshot: str | None = None,
        git_commit: str | None = None,
        meta: RunMeta | None = None,
    ) -> RunRecord:
        """Record a run: under ``run_id`` when the caller reserved one (Engine.submit prepares
        the run's folder first, so only a run that can start is ever recorded). ``meta``: its
        name, note, tags, params and sweep, in the same transaction (a taken name records
        nothing)."""
        ms = int((created if created is not None else time.time()) * 1000)
        meta = meta or RunMeta()
        with self._tx() as db:
            if meta.name is not None:
                self._check_name_free(db, meta.name)
            if run_id is None:
                while db.execute("SELECT 1 FROM runs WHERE id=?", (f"{project}_{ms}",)).fetchone():
                    ms += 1  # two submits in the same millisecond still get distinct ids
                run_id = f"{project}_{ms}"
            db.execute(
                "INSERT INTO runs (id, project, target, target_type, runconfig, script, args, env,"
                " status, created, trigger, snapshot, git_commit, name, note, sweep)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    project,
                    target,
                    target_type,
                    runconfig,
                    script,
                    json.dumps(args),
                    json.dumps(env),
                    RunStatus.QUEUED.value,
                    created if created is not None else ms / 1000,
                    json.dumps(trigger or []),
                    snapshot,
                    git_commit,
                    meta.name,
                    meta.note,
                    meta.sweep,
                ),
            )
            _put(db, "tags", run_id, meta.tags.items())
            _put(db, "params", run_id, ((k, json.dumps(v)) for k, v in meta.params.items()))
        return self.get(run_id)

    @staticmethod
    def _check_name_free(db: sqlite3.Connection, name: str) -> None:
        row = db.execute("SELECT id FROM runs WHERE name=? OR id=?", (name, name)).fetchone()
        if row is not None:
            raise UsageError(f"the name {name!r} is taken by run {row['id']}"
                             " (rename that run, or pick another name)")

    def exists(self, run_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone() is not None

    def get(self, run_id: str, with_metrics: bool = True) -> RunRecord:
        """One run; pollers that only watch its status pass ``with_metrics=False`` (a run can
        log many thousand values, and reading them all twice a second is work for nothing)."""
        row = self._db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFound(f"no run {run_id!r} in this project")
        record = _record(row)
        if with_metrics:
            record.metrics = self.metrics(run_id)
            self._add_details([record])
        return record

    def find(self, prefix: str, with_metrics: bool = True) -> RunRecord:
        """A run by id, by name, or by a unique id suffix/prefix as people type them."""
        row = self._db.execute("SELECT id FROM runs WHERE id=?", (prefix,)).fetchone()
        if row is not None:
            return self.get(prefix, with_metrics)
        row = self._db.execute("SELECT id FROM runs WHERE name=?", (prefix,)).fetchone()
        if row is not None:
            return self.get(row["id"], with_metrics)
        pattern = _like_literal(prefix)  # an id's '_' must match '_' only
        rows = self._db.execute(
            "SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' OR id LIKE ? ESCAPE '\\'"
            " ORDER BY created DESC LIMIT 2",
            (f"{pattern}%", f"%{pattern}"),
        ).fetchall()
        if len(rows) == 1:
            return self.get(rows[0]["id"], with_metrics)
        if len(rows) > 1:
            raise RunNotFound(f"run id {prefix!r} is ambiguous")
        raise RunNotFound(f"no run {prefix!r} in this project")

    def list_runs(self, limit: int | None = None, with_metrics: bool = True) -> list[RunRecord]:
        sql = "SELECT * FROM runs ORDER BY created DESC"
        rows = self._db.execute(sql + (f" LIMIT {int(limit)}" if limit else "")).fetchall()
        records = [_record(r) for r in rows]
        if with_metrics and records:
            by_run = self._all_metrics()
            for rec in records:
                rec.metrics = by_run.get(rec.id, {})
            self._add_details(records)
        return records

    def select(
        self,
        where: str = "",
        args: Sequence[Any] = (),
        order: str = "created DESC",
        limit: int | None = None,
        with_metrics: bool = True,
    ) -> list[RunRecord]:
        """Runs matching an SQL condition on ``runs`` (built by backends/query.py from typed
        filters, values always bound as ``args``), in ``order``; only their metrics are read."""
        sql = "SELECT * FROM runs" + (f" WHERE {where}" if where else "") + f" ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        records = [_record(r) for r in self._db.execute(sql, tuple(args)).fetchall()]
        if with_metrics and records:
            by_run = self._metrics_of([r.id for r in records])
            for rec in records:
                rec.metrics = by_run.get(rec.id, {})
            self._add_details(records)
        return records

    def select_sorted(
        self,
        where: str,
        args: Sequence[Any],
        name: str,
        descending: bool = True,
        limit: int | None = None,
        with_metrics: bool = True,
    ) -> list[RunRecord]:
        """``select`` ordered by each run's value of ``name`` (its metric's last value, else its
        param), runs without a numeric one after the others, newest first among equals. The
        index on ``run_values(name, num)`` gives the order, so a limit reads only what it
        keeps. ``where`` may name runs' columns bare except ``name`` (say ``runs.name``)."""
        cond = f" AND ({where})" if where else ""
        direction = "DESC" if descending else "ASC"
        cut = "" if limit is None else f" LIMIT {int(limit)}"
        db = self._db
        own = not db.in_transaction
        if own:
            db.execute("BEGIN")  # both reads see one state of the store
        try:
            rows = db.execute(
                "SELECT runs.* FROM run_values AS s JOIN runs ON runs.id = s.run_id"
                f" WHERE s.name = ? AND s.num IS NOT NULL{cond}"
                f" ORDER BY s.num {direction}, runs.created DESC{cut}", (name, *args),
            ).fetchall()
            if limit is None or len(rows) < limit:
                rest = "" if limit is None else f" LIMIT {int(limit) - len(rows)}"
                rows += db.execute(
                    "SELECT * FROM runs WHERE NOT EXISTS (SELECT 1 FROM run_values AS s WHERE"
                    f" s.run_id = runs.id AND s.name = ? AND s.num IS NOT NULL){cond}"
                    f" ORDER BY created DESC{rest}", (name, *args),
                ).fetchall()
        finally:
            if own:
                db.execute("COMMIT")
        records = [_record(r) for r in rows]
        if with_metrics and records:
            by_run = self._metrics_of([r.id for r in records])
            for rec in records:
                rec.metrics = by_run.get(rec.id, {})
            self._add_details(records)
        return records

    def broad_test(self, limit: int | None) -> Callable[[Any], bool]:
        """For a query reading at most ``limit`` runs: whether a comparison (query.Compare)
        matches so many runs that checking each run, newest first, until ``limit`` match
        costs less than gathering every match from the index (each gathered one costs about
        twice a check). Counts stop at what decides, so the test stays cheap."""
        from .query import compare_parts

        row = self._db.execute("SELECT MAX(rowid) FROM runs").fetchone()  # ~ the run count
        total = int(row[0] or 0)

        def broad(expr: Any) -> bool:
            name, column, op, value = compare_parts(expr)
            if column not in ("num", "txt") or op not in ("=", "<>", "<", "<=", ">", ">="):
                raise ValueError(f"not a comparison: {column} {op}")
            # A run is checked per expected match: total / matches runs each, limit times.
            cap = total // 2 + 1
            count = int(self._db.execute(
                f"SELECT COUNT(*) FROM (SELECT 1 FROM run_values WHERE name = ? AND {column} {op} ?"
                f" LIMIT {cap})", (name, value)).fetchone()[0])
            checked = total if limit is None else min(total, limit * total / max(count, 1))
            return 2 * count > checked

        return broad

    def _metrics_of(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(ids):
            rows = self._db.execute(
                "SELECT run_id, name, value, series FROM metrics WHERE run_id IN"
                f" ({','.join('?' * len(chunk))}) ORDER BY run_id, name, seq", chunk,
            ).fetchall()
            out.update(_fold(rows))
        return out

    def _add_details(self, records: list[RunRecord]) -> None:
        """Fill the records' tags and params (small: read for the records asked, never all)."""
        by_id = {r.id: r for r in records}
        for chunk in _chunks(list(by_id)):
            marks = ",".join("?" * len(chunk))
            for row in self._db.execute(
                f"SELECT run_id, name, value FROM tags WHERE run_id IN ({marks}) ORDER BY name",
                chunk,
            ):
                by_id[row[0]].tags[row[1]] = row[2]
            for row in self._db.execute(
                f"SELECT run_id, name, value FROM params WHERE run_id IN ({marks}) ORDER BY name",
                chunk,
            ):
                by_id[row[0]].params[row[1]] = json.loads(row[2])

    # ---------------------------------------------------------------- metadata

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        with self._tx() as db:
            self._must_exist(db, run_id)
            _put(db, "tags", run_id, tags.items())

    def remove_tags(self, run_id: str, names: Sequence[str]) -> list[str]:
        """The names that were there (and are gone now)."""
        with self._tx() as db:
            self._must_exist(db, run_id)
            gone = [n for n in names if db.execute(
                "DELETE FROM tags WHERE run_id=? AND name=?", (run_id, n)).rowcount]
        return gone

    def set_params(self, run_id: str, params: dict[str, Any]) -> None:
        with self._tx() as db:
            self._must_exist(db, run_id)
            _put(db, "params", run_id, ((k, json.dumps(v)) for k, v in params.items()))

    def set_note(self, run_id: str, note: str | None) -> None:
        with self._tx() as db:
            self._must_exist(db, run_id)
            db.execute("UPDATE runs SET note=? WHERE id=?", (note or None, run_id))

    def rename(self, run_id: str, name: str | None) -> None:
        """Give a run a name (None: drop it); a name another run holds is refused."""
        with self._tx() as db:
            self._must_exist(db, run_id)
            if name is not None:
                row = db.execute("SELECT name FROM runs WHERE id=?", (run_id,)).fetchone()
                if row["name"] == name:
                    return
                self._check_name_free(db, name)
            db.execute("UPDATE runs SET name=? WHERE id=?", (name, run_id))

    @staticmethod
    def _must_exist(db: sqlite3.Connection, run_id: str) -> None:
        if db.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone() is None:
            raise RunNotFound(f"no run {run_id!r} in this project")

    def delete(self, run_id: str) -> bool:
        """Forget a terminal run (its row, metrics, params, tags); False, with nothing changed,
        when it is not terminal (or gone): the guard is in the DELETE, the row count decides."""
        with self._tx() as db:
            cur = db.execute(
                f"DELETE FROM runs WHERE id=? AND status IN {_TERMINAL_SQL}", (run_id,))
            if cur.rowcount != 1:
                return False
            for table in ("metrics", "params", "tags", "run_values"):
                db.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))
        return True

    # ---------------------------------------------------------------- sweeps

    def create_sweep(self, sweep_id: str, target: str, script: str, spec: dict[str, Any],
                     total: int) -> SweepRecord:
        self._db.execute(
            "INSERT INTO sweeps (id, created, target, script, spec, total) VALUES (?,?,?,?,?,?)",
            (sweep_id, time.time(), target, script, json.dumps(spec), total),
        )
        return self.sweep(sweep_id)

    def sweep(self, prefix: str) -> SweepRecord:
        """A sweep by id or unique id prefix."""
        rows = self._db.execute("SELECT * FROM sweeps WHERE id=?", (prefix,)).fetchall()
        if not rows:
            rows = self._db.execute(
                "SELECT * FROM sweeps WHERE id LIKE ? ESCAPE '\\' LIMIT 2",
                (_like_literal(prefix) + "%",),
            ).fetchall()
        if len(rows) > 1:
            raise RunNotFound(f"sweep id {prefix!r} is ambiguous")
        if not rows:
            raise RunNotFound(f"no sweep {prefix!r} in this project")
        row = rows[0]
        return SweepRecord(row["id"], row["created"], row["target"], row["script"],
                           json.loads(row["spec"]), row["total"], bool(row["cancel_requested"]))

    def request_sweep_cancel(self, sweep_id: str) -> None:
        self._db.execute("UPDATE sweeps SET cancel_requested=1 WHERE id=?", (sweep_id,))

    def last(self) -> RunRecord:
        row = self._db.execute("SELECT id FROM runs ORDER BY created DESC LIMIT 1").fetchone()
        if row is None:
            raise RunNotFound("no runs yet in this project")
        return self.get(row["id"])

    def active(self) -> list[RunRecord]:
        # Through the status index, always: the few runs in flight at once (a planner that
        # prefers the created index for the order reads every run of a 100,000-run store).
        rows = self._db.execute(
            f"SELECT * FROM runs INDEXED BY runs_status WHERE status IN {_ACTIVE_SQL}"
            " ORDER BY created"
        ).fetchall()
        return [_record(r) for r in rows]

    def set_status(self, run_id: str, status: RunStatus, **fields: Any) -> bool:
        """Move a run on; returns False (and changes nothing) once the run is terminal."""
        columns = {"status": status.value, **_encode(fields)}
        if status.is_terminal() and "ended" not in columns:
            columns["ended"] = time.time()
        if status is RunStatus.RUNNING and "started" not in columns:
            columns["started"] = time.time()
        assigns = ", ".join(f"{k}=?" for k in columns)
        cur = self._db.execute(
            f"UPDATE runs SET {assigns} WHERE id=? AND status NOT IN {_TERMINAL_SQL}",
            (*columns.values(), run_id),
        )
        return cur.rowcount == 1

    def update(self, run_id: str, **fields: Any) -> None:
        """Record facts that are not a status change (pid, snapshot hash, outputs...)."""
        columns = _encode(fields)
        assigns = ", ".join(f"{k}=?" for k in columns)
        self._db.execute(f"UPDATE runs SET {assigns} WHERE id=?", (*columns.values(), run_id))

    def claim_supervisor(
        self,
        run_id: str,
        seen: tuple[int | None, int | None],
        mine: tuple[int | None, int | None],
    ) -> bool:
        """Take over a run's supervision: write ``mine`` (pid, start ticks) only if the run still
        names the supervisor ``seen`` (the one found dead) and is not terminal. Of clients racing
        to replace one dead supervisor exactly one wins; the row count decides."""
        cur = self._db.execute(
            "UPDATE runs SET supervisor_pid=?, supervisor_start=? WHERE id=?"
            f" AND status NOT IN {_TERMINAL_SQL} AND supervisor_pid IS ? AND supervisor_start IS ?",
            (*mine, run_id, *seen),
        )
        return cur.rowcount == 1

    def request_cancel(self, run_id: str) -> None:
        self._db.execute("UPDATE runs SET cancel_requested=1 WHERE id=?", (run_id,))

    # ---------------------------------------------------------------- metrics

    def add_metric(self, run_id: str, name: str, value: Any, ts: float | None = None) -> None:
        """A list value is a series; the same name logged again extends it."""
        now = ts if ts is not None else time.time()
        values = value if isinstance(value, list) else [value]
        series = 1 if isinstance(value, list) else 0
        with self._tx() as db:
            row = db.execute(
                "SELECT COALESCE(MAX(seq), -1) FROM metrics WHERE run_id=? AND name=?",
                (run_id, name),
            ).fetchone()
            seq = int(row[0]) + 1
            db.executemany(
                "INSERT INTO metrics (run_id, name, seq, value, series, ts) VALUES (?,?,?,?,?,?)",
                [(run_id, name, seq + i, json.dumps(v), series, now) for i, v in enumerate(values)],
            )
            if values:
                _last_values(db, run_id, {name: (values[-1], seq + len(values) - 1,
                                                 bool(series) or seq > 0 or len(values) > 1)})

    def add_metrics(self, run_id: str, items: list[tuple[str, Any, float | None]]) -> None:
        """``add_metric`` for each ``(name, value, ts)`` in order, in one transaction (a batch
        of a run's output lines holds many).
        Records of kind param or tag (a name that is a ``metrics.Key`` saying so: the
        supervisor passes on what ``metrics.parse`` returned) go to their own tables, the last
        value of a name kept."""
        if not items:
            return
        now = time.time()
        with self._tx() as db:
            next_seq: dict[str, int] = {}
            first_seq: dict[str, int] = {}
            last: dict[str, tuple[Any, int, bool]] = {}
            rows = []
            for name, value, ts in items:
                kind = getattr(name, "kind", None)
                if kind == PARAM:
                    _put(db, "params", run_id, [(str(name), json.dumps(value))])
                    continue
                if kind == TAG:
                    _put(db, "tags", run_id, [(str(name), str(value))])
                    continue
                name = str(name)
                if name not in next_seq:
                    row = db.execute(
                        "SELECT COALESCE(MAX(seq), -1) FROM metrics WHERE run_id=? AND name=?",
                        (run_id, name),
                    ).fetchone()
                    next_seq[name] = first_seq[name] = int(row[0]) + 1
                values = value if isinstance(value, list) else [value]
                series = 1 if isinstance(value, list) else 0
                seq = next_seq[name]
                rows += [(run_id, name, seq + i, json.dumps(v), series,
                          ts if ts is not None else now) for i, v in enumerate(values)]
                next_seq[name] = seq + len(values)
                if values:
                    was = last.get(name)
                    last[name] = (values[-1], next_seq[name] - 1, bool(series) or was is not None
                                  or first_seq[name] > 0 or len(values) > 1)
            db.executemany(
                "INSERT INTO metrics (run_id, name, seq, value, series, ts) VALUES (?,?,?,?,?,?)",
                rows,
            )
            _last_values(db, run_id, last)

    def metrics(self, run_id: str) -> dict[str, Any]:
        rows = self._db.execute(
            "SELECT run_id, name, value, series FROM metrics WHERE run_id=? ORDER BY name, seq",
            (run_id,),
        ).fetchall()
        return _fold(rows).get(run_id, {})

    def metrics_tail(self, run_id: str, limit: int) -> dict[str, Any]:
        """A run's metrics with each series cut to its last ``limit`` values: what a chart
        draws, read in bounded work however long the series has grown."""
        rows = self._db.execute(
            "SELECT run_id, name, value, series FROM ("
            " SELECT run_id, name, value, series, seq, ROW_NUMBER() OVER"
            "  (PARTITION BY name ORDER BY seq DESC) AS back FROM metrics WHERE run_id=?)"
            " WHERE back <= ? ORDER BY name, seq",
            (run_id, max(1, limit)),
        ).fetchall()
        counts = dict(self._db.execute(
            "SELECT name, COUNT(*) FROM metrics WHERE run_id=? GROUP BY name", (run_id,)
        ).fetchall())
        folded = _fold(rows).get(run_id, {})
        # A name logged more often than it is shown is a series even if one value is kept.
        return {
            name: [value] if counts.get(name, 0) > 1 and not isinstance(value, list) else value
            for name, value in folded.items()
        }

    def last_metrics(self) -> dict[str, dict[str, tuple[Any, bool]]]:
        """Per run, each metric's last value and whether it is a series: what a table of runs
        shows, without decoding every value of every series (thousands per run)."""
        rows = self._db.execute(
            "SELECT run_id, name, value, series FROM run_values WHERE metric = 1"
            " ORDER BY run_id, name"
        ).fetchall()
        out: dict[str, dict[str, tuple[Any, bool]]] = {}
        for row in rows:
            out.setdefault(row["run_id"], {})[row["name"]] = (
                json.loads(row["value"]), bool(row["series"]))
        return out

    def _all_metrics(self) -> dict[str, dict[str, Any]]:
        rows = self._db.execute(
            "SELECT run_id, name, value, series FROM metrics ORDER BY run_id, name, seq"
        ).fetchall()
        return _fold(rows)


class _Holder:
    """A thread's connection, in the thread's local storage: collected when the thread ends."""

    __slots__ = ("__weakref__", "conn", "generation")

    def __init__(self, conn: sqlite3.Connection, generation: int):
        self.conn = conn
        self.generation = generation


def _put(db: sqlite3.Connection, table: str, run_id: str, items: Iterable[tuple[str, str]]) -> None:
    rows = [(run_id, k, v) for k, v in items]
    db.executemany(
        f"INSERT INTO {table} (run_id, name, value) VALUES (?,?,?)"
        " ON CONFLICT (run_id, name) DO UPDATE SET value=excluded.value",
        rows,
    )
    if table == "params" and rows:  # a param is a run's value of its name unless a metric is
        db.executemany(
            "INSERT INTO run_values (run_id, name, value, num, txt, metric, seq)"
            " VALUES (?,?,?,?,?,0,0) ON CONFLICT (run_id, name) DO UPDATE SET"
            " value=excluded.value, num=excluded.num, txt=excluded.txt"
            " WHERE run_values.metric = 0",
            [(r, k, v, *_num_txt(json.loads(v))) for r, k, v in rows],
        )


def _last_values(db: sqlite3.Connection, run_id: str,
                 last: dict[str, tuple[Any, int, bool]]) -> None:
    """Metrics' last values (name -> (value, seq, is a series)) into run_values: over a param,
    and over an earlier value (a later seq)."""
    db.executemany(
        "INSERT INTO run_values (run_id, name, value, num, txt, metric, seq, series)"
        " VALUES (?,?,?,?,?,1,?,?) ON CONFLICT (run_id, name) DO UPDATE SET"
        " value=excluded.value, num=excluded.num, txt=excluded.txt, metric=1,"
        " seq=excluded.seq, series=run_values.metric OR excluded.series"
        " WHERE run_values.metric = 0 OR excluded.seq >= run_values.seq",
        [(run_id, name, json.dumps(value), *_num_txt(value), seq, int(series))
         for name, (value, seq, series) in last.items()],
    )


def _num_txt(value: Any) -> tuple[float | None, str | None]:
    """A value's number (bools, NaN and infinities are none: JSON has no such numbers) or
    text, as the run_values columns hold them."""
    if isinstance(value, bool):
        return None, None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond a double
            return None, None
        return (number, None) if number - number == 0 else (None, None)
    return (None, value) if isinstance(value, str) else (None, None)


def _chunks(ids: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _like_literal(text: str) -> str:
    """``text`` for a LIKE pattern with ESCAPE '\\': its wildcards match themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _fold(rows: list[sqlite3.Row]) -> dict[str, dict[str, Any]]:
    values: dict[str, dict[str, list[Any]]] = {}
    series: set[tuple[str, str]] = set()
    for row in rows:
        values.setdefault(row["run_id"], {}).setdefault(row["name"], []).append(
            json.loads(row["value"])
        )
        if row["series"]:
            series.add((row["run_id"], row["name"]))
    out: dict[str, dict[str, Any]] = {}
    for run_id, names in values.items():
        out[run_id] = {
            name: vals if len(vals) > 1 or (run_id, name) in series else vals[0]
            for name, vals in names.items()
        }
    return out


def _encode(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "commit":
            key = "git_commit"
        if isinstance(value, list | dict):
            value = json.dumps(value)
        elif isinstance(value, RunStatus):
            value = value.value
        elif isinstance(value, bool):
            value = int(value)
        out[key] = value
    return out


def _record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"],
        project=row["project"],
        target=row["target"],
        target_type=row["target_type"],
        status=RunStatus(row["status"]),
        created=row["created"],
        runconfig=row["runconfig"],
        script=row["script"],
        args=json.loads(row["args"]),
        env=json.loads(row["env"]),
        started=row["started"],
        ended=row["ended"],
        exit_code=row["exit_code"],
        error=row["error"],
        snapshot=row["snapshot"],
        git_commit=row["git_commit"],
        outputs=json.loads(row["outputs"]),
        durable_ref=row["durable_ref"],
        supervisor_pid=row["supervisor_pid"],
        supervisor_start=row["supervisor_start"],
        cancel_requested=bool(row["cancel_requested"]),
        trigger=json.loads(row["trigger"] or "[]"),
        capabilities=json.loads(row["capabilities"] or "[]"),
        name=row["name"],
        note=row["note"],
        sweep=row["sweep"],
    )
