"""Rebuild the run store from the run folders (``labdeck runs reindex``).

Each run's folder keeps what the store held about it: ``run.json`` (target, argv, environment,
trigger), ``log`` (timestamps of its start and end, its metrics as ``met`` entries, the
supervisor's last ``sys`` line with the status and exit code), ``outputs/`` and ``snapshot.json``
(its snapshot's manifest: the content hash recorded again; the content itself is in
``.labdeck/objects``, which no store row indexes). So deleting or
damaging ``runs.db`` loses no history: a damaged file is moved aside (kept for a post-mortem,
never deleted) and a new store is filled from the folders; a healthy store only gets the runs it
lacks. What the folders do not keep (a cancel request, the supervisor's pid, names and notes given
later) is not recovered.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import objects
from .errors import LabdeckError, RunNotFound, one_line
from .logfile import iter_entries, parse_ts
from .project import Project
from .status import RunStatus
from .store import RunStore

_END = re.compile(r"^run (completed|failed|canceled); exit code (-?\d+)")
DAMAGED_SUFFIX = ".damaged-"


@dataclass
class Reindexed:
    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "id: why" of folders that are no run
    moved_aside: Path | None = None  # the damaged store, kept


@dataclass
class _LogFacts:
    first: float | None = None
    last: float | None = None
    status: RunStatus | None = None
    exit_code: int | None = None
    error: str | None = None
    metrics: list[tuple[str, Any, float]] = field(default_factory=list)


def store_is_damaged(db_path: Path) -> bool:
    """The file is there and SQLite cannot read the run table from it."""
    if not db_path.exists():
        return False
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            conn.execute("PRAGMA quick_check").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return True
    return False


def move_aside(db_path: Path) -> Path:
    """Rename the damaged store (and its WAL files) out of the way; the new name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kept = db_path.with_name(f"{db_path.name}{DAMAGED_SUFFIX}{stamp}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{db_path}{suffix}")
        if src.exists():
            src.rename(Path(f"{kept}{suffix}"))
    return kept


def parse_value(text: str) -> Any:
    """A metric's value as the supervisor wrote it (``name = value``)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def read_log(path: Path) -> _LogFacts:
    facts = _LogFacts()
    last = ""  # the last entry's time, parsed once at the end: 1 strptime, not one a line
    for entry in iter_entries(path):
        if not entry.ts:
            continue  # a foreign line: no time to place it
        if facts.first is None or entry.stream in ("met", "sys"):
            try:
                ts = parse_ts(entry.ts)
            except ValueError:
                continue
            facts.first = ts if facts.first is None else facts.first
            facts.last = ts
            if entry.stream == "met":
                name, sep, value = entry.text.partition(" = ")
                if sep:
                    facts.metrics.append((name, parse_value(value), ts))
            elif entry.stream == "sys":
                end = _END.match(entry.text)
                if end is not None:
                    facts.status = RunStatus(end.group(1))
                    facts.exit_code = int(end.group(2))
                elif entry.text.startswith("error: "):
                    facts.error = entry.text[len("error: "):]
        last = entry.ts
    if last:
        try:
            facts.last = parse_ts(last)
        except ValueError:
            pass  # the last time that parsed stays
    return facts


def _target_type(project: Project, target: str) -> str:
    try:
        view = project.view(target)
    except LabdeckError:
        return "local" if target == "local" else "unknown"
    return view.compute.type if view.compute is not None else "unknown"


def _outputs(run_dir: Path) -> list[str]:
    root = run_dir / "outputs"
    if not root.is_dir():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def add_run(store: RunStore, project: Project, run_dir: Path) -> None:
    spec = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    argv = [str(a) for a in spec.get("argv", [])]
    target = str(spec.get("target", "local"))
    facts = read_log(run_dir / "log")
    created = facts.first if facts.first is not None else (run_dir / "run.json").stat().st_mtime
    runconfig = target if (project.config_dir / f"{target}.runconfig").is_file() else None
    snapshot = None
    if objects.has_manifest(run_dir):  # the snapshot's content hash, as submit recorded it
        try:
            data = json.loads((run_dir / objects.MANIFEST).read_text(encoding="utf-8"))
            snapshot = str(data.get("digest") or objects.Manifest.from_json(data).digest)
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            snapshot = None
    store.create(project.name, target, _target_type(project, target), runconfig=runconfig,
                 script=argv[0] if argv else None, args=argv[1:],
                 env={str(k): str(v) for k, v in dict(spec.get("env", {})).items()},
                 trigger=[str(t) for t in spec.get("trigger", [])], run_id=run_dir.name,
                 created=created, snapshot=snapshot)
    for name, value, ts in facts.metrics:
        store.add_metric(run_dir.name, name, value, ts=ts)
    status = facts.status
    error = facts.error
    if status is None:  # no end in its log: failed before its script ended, or still running
        status = RunStatus.FAILED
        error = error or "its log records no end (store rebuilt from the run folder)"
    store.update(run_dir.name, status=status.value, started=facts.first, ended=facts.last,
                 exit_code=facts.exit_code, outputs=_outputs(run_dir), error=error)


def reindex(project: Project) -> Reindexed:
    """Fill the store from the run folders: a damaged store is moved aside first."""
    result = Reindexed()
    if store_is_damaged(project.db_path):
        result.moved_aside = move_aside(project.db_path)
    project.ensure_state()
    store = RunStore(project.db_path)
    try:
        for run_dir in sorted(project.runs_dir.iterdir()) if project.runs_dir.is_dir() else []:
            if not (run_dir / "run.json").is_file():
                continue
            try:
                store.get(run_dir.name, with_metrics=False)
                continue  # the store has it
            except RunNotFound:
                pass
            try:
                add_run(store, project, run_dir)
                result.added.append(run_dir.name)
            except (OSError, ValueError, LabdeckError) as err:
                result.skipped.append(f"{run_dir.name}: {one_line(err)}")
    finally:
        store.close()
    return result
