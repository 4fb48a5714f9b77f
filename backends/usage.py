"""What the project's run history takes on disk (``labdeck store``, ``labdeck runs du``).

Snapshot content lives once in ``.labdeck/objects`` (objects.py); each run's folder holds its
manifest, log, outputs and, while it runs, the materialised copy of its snapshot. A run's *unique*
content is the objects no other run references (what deleting it alone frees); its *shared*
content is referenced by other runs too. Sizes are bytes on disk (blocks).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import objects
from .history import folder_size


@dataclass
class RunUsage:
    run_id: str
    files: int = 0  # in its snapshot
    snapshot_bytes: int = 0  # the snapshot's logical size (sum of its files' sizes)
    unique: int = 0  # objects only this run references
    shared: int = 0  # objects other runs reference too
    materialised: int = 0  # its snapshot/ folder (a live copy, or an old run's full copy)
    outputs: int = 0
    log: int = 0
    other: int = 0  # run.json, manifest, supervisor.log...
    manifest: bool = True  # False: an old run whose snapshot is a full copy

    @property
    def folder(self) -> int:
        return self.materialised + self.outputs + self.log + self.other

    def to_json(self) -> dict[str, object]:
        return {"run": self.run_id, "files": self.files, "snapshot_bytes": self.snapshot_bytes,
                "unique": self.unique, "shared": self.shared,
                "materialised": self.materialised, "outputs": self.outputs, "log": self.log,
                "other": self.other, "folder": self.folder, "manifest": self.manifest}


@dataclass
class StoreUsage:
    objects: int = 0
    objects_bytes: int = 0
    unreferenced: int = 0
    unreferenced_bytes: int = 0
    runs: list[RunUsage] = field(default_factory=list)
    runs_bytes: int = 0  # every run folder on disk
    database_bytes: int = 0  # runs.db and its WAL
    other_bytes: int = 0  # the rest of .labdeck: stamps, caches, logs, the folders themselves

    @property
    def total(self) -> int:
        """All of ``.labdeck`` (what ``du -s .labdeck`` says)."""
        return self.objects_bytes + self.runs_bytes + self.database_bytes + self.other_bytes

    def to_json(self) -> dict[str, object]:
        return {"objects": self.objects, "objects_bytes": self.objects_bytes,
                "unreferenced": self.unreferenced,
                "unreferenced_bytes": self.unreferenced_bytes, "runs": len(self.runs),
                "runs_bytes": self.runs_bytes, "database_bytes": self.database_bytes,
                "other_bytes": self.other_bytes, "total_bytes": self.total,
                "logical_snapshot_bytes": sum(r.snapshot_bytes for r in self.runs)}


def usage(state_dir: Path, runs_dir: Path, only: list[str] | None = None) -> StoreUsage:
    """The store's totals and every run folder's; with ``only``, just those runs (the totals
    of run folders and the rest are then left at 0: only the objects' are the store's)."""
    store = objects.ObjectStore(state_dir)
    sizes = store.all_objects()
    refs = objects.summaries(runs_dir)
    count: dict[str, int] = {}
    for summary in refs.values():
        for digest in summary.digests:
            count[digest] = count.get(digest, 0) + 1
    result = StoreUsage(objects=len(sizes), objects_bytes=sum(sizes.values()))
    for digest, size in sizes.items():
        if digest not in count:
            result.unreferenced += 1
            result.unreferenced_bytes += size
    try:
        names = sorted(n for n in os.listdir(runs_dir) if (runs_dir / n).is_dir())
    except OSError:
        names = []
    wanted = set(only) if only is not None else None
    for name in names:
        if wanted is not None and name not in wanted:
            continue  # runs_bytes and the rest are the whole store's: left at 0 then
        run = _run_usage(runs_dir / name, refs.get(name), count, sizes)
        result.runs_bytes += run.folder
        result.runs.append(run)
    if wanted is None:
        _rest(state_dir, runs_dir, result)
    return result


def _rest(state_dir: Path, runs_dir: Path, result: StoreUsage) -> None:
    """The store's database, and everything else under ``state_dir`` that is neither an object
    nor a run folder (the folders' own blocks included), so that the total is all of it."""
    objects_dir = state_dir / objects.OBJECTS
    for path in (state_dir, objects_dir, runs_dir):
        try:
            result.other_bytes += os.lstat(path).st_blocks * 512
        except OSError:
            pass
    for fan in _entries(objects_dir):  # the fan-out folders, stray temporary files
        try:
            result.other_bytes += fan.stat(follow_symlinks=False).st_blocks * 512
        except OSError:
            pass
    for item in _entries(state_dir):
        if Path(item.path) in (objects_dir, runs_dir):
            continue
        try:
            if item.is_dir(follow_symlinks=False):
                size = folder_size(Path(item.path))
            else:
                size = item.stat(follow_symlinks=False).st_blocks * 512
        except OSError:
            continue
        if item.name.startswith("runs.db"):
            result.database_bytes += size
        else:
            result.other_bytes += size


def _entries(path: Path) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(path))
    except OSError:
        return []


def _run_usage(run_dir: Path, summary: objects.Summary | None, count: dict[str, int],
               sizes: dict[str, int]) -> RunUsage:
    run = RunUsage(run_dir.name, manifest=summary is not None)
    digests = summary.digests if summary is not None else None
    if summary is not None:
        run.files = summary.files
        run.snapshot_bytes = summary.size
    if digests is not None:
        for digest in digests:
            if count.get(digest, 0) > 1:
                run.shared += sizes.get(digest, 0)
            else:
                run.unique += sizes.get(digest, 0)
    try:
        items = list(os.scandir(run_dir))
        run.other += os.lstat(run_dir).st_blocks * 512  # the folder itself
    except OSError:
        return run
    for item in items:
        try:  # a copy dropped (or a run deleted) meanwhile by another client is not there
            if item.is_dir(follow_symlinks=False):
                size = folder_size(Path(item.path))  # the folder's own blocks included
            else:
                size = item.stat(follow_symlinks=False).st_blocks * 512
        except OSError:
            continue
        if item.name == objects.SNAPSHOT_DIR:
            run.materialised += size
            if digests is None:  # an old run: its copy is its snapshot
                run.files = sum(len(f) for _, _, f in os.walk(item.path))
                run.snapshot_bytes = size
        elif item.name == "outputs":
            run.outputs += size
        elif item.name == "log":
            run.log += size
        else:
            run.other += size
    return run
