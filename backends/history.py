"""Run history that people manage: names, tags and notes as they type them, and deleting runs
(one by one, or pruned by age, status, tag and count) with the space it frees.

A run that is not terminal is never deleted: ``RunStore.delete`` guards it in SQL, and its folder
goes only after its rows did. The snapshot content (``.labdeck/objects``, see objects.py) that only
the deleted runs referenced goes with them, under the store's exclusive lock (a submit in progress
holds it shared until its manifest is saved); a run in flight keeps its manifest, so its content
stays. The space a dry run promises is the space a real one frees: each run's folder plus the
objects no other run references, each object counted for one run only.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import objects
from .errors import StorageError, UsageError
from .query import RunFilter
from .store import RunRecord, RunStore

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
_TAG_NAME = re.compile(r"[A-Za-z0-9_.:/+-]{1,128}")


def check_name(name: str) -> str:
    """A run's name: letters, digits and ``. _ + -``, at most 64, no spaces (it is typed where
    a run id goes)."""
    if not _NAME.fullmatch(name):
        raise UsageError(f"run name {name!r}: letters, digits and . _ + - only (at most 64),"
                         " starting with a letter or digit")
    return name


def parse_tags(items: list[str] | tuple[str, ...], option: str = "--tag") -> dict[str, str]:
    """``k=v`` pairs (``k`` alone: an empty value) into a dict, the last of a name winning."""
    tags: dict[str, str] = {}
    for item in items:
        name, _, value = item.partition("=")
        if not _TAG_NAME.fullmatch(name):
            raise UsageError(f"{option} {item!r}: expected NAME=VALUE (NAME: letters, digits,"
                             " _ . : / + -)")
        tags[name] = value
    return tags


def scalar(text: str) -> Any:
    """A typed value as a person writes it: ``3`` an int, ``0.1`` or ``1e-3`` a float, ``true``
    a bool, anything else text (what a sweep records as a grid point's param)."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


# ------------------------------------------------------------------------ delete and prune


@dataclass
class Doomed:
    record: RunRecord
    size: int  # bytes freed with it: its folder on disk, plus ``objects``' bytes
    objects: dict[str, int] = field(default_factory=dict)  # content only it references -> bytes


def folder_size(path: Path) -> int:
    """Bytes on disk of ``path`` and all under it (blocks, each inode once; links not
    followed): what removing it frees."""
    try:
        total = os.lstat(path).st_blocks * 512
    except OSError:
        return 0
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def select_prune(
    store: RunStore,
    runs_dir: Path,
    run_filter: RunFilter,
    keep_last: int | None = None,
) -> list[Doomed]:
    """The runs ``runs prune`` deletes: those the filter selects, but the newest ``keep_last``
    of them, and only terminal ones (a run in flight is never pruned)."""
    if keep_last is not None and keep_last < 0:
        raise UsageError("--keep-last: a count, 0 or more")
    where, args = run_filter.sql()
    records = store.select(where, args, with_metrics=False)
    if keep_last:
        records = records[keep_last:]  # newest first: the first ones stay
    return _with_objects(runs_dir, [Doomed(r, folder_size(runs_dir / r.id))
                                    for r in records if r.status.is_terminal()])


def _with_objects(runs_dir: Path, doomed: list[Doomed]) -> list[Doomed]:
    """Each doomed run's share of the snapshot content that goes with it (objects no surviving
    run references), added to its size."""
    if not doomed:
        return doomed
    store = objects.ObjectStore(runs_dir.parent)
    freed = objects.unreferenced_by_others(runs_dir, [d.record.id for d in doomed],
                                           store.all_objects())
    for item in doomed:
        item.objects = freed.get(item.record.id, {})
        item.size += sum(item.objects.values())
    return doomed


def select_delete(store: RunStore, runs_dir: Path, refs: list[str]) -> list[Doomed]:
    """The runs named (ids, names or id prefixes); a run in flight is an error naming it."""
    doomed: dict[str, Doomed] = {}
    for ref in refs:
        record = store.find(ref, with_metrics=False)
        if not record.status.is_terminal():
            raise UsageError(f"run {record.id} is {record.status.value}: cancel it first"
                             f" (labdeck runs cancel {record.id})")
        doomed.setdefault(record.id, Doomed(record, folder_size(runs_dir / record.id)))
    return _with_objects(runs_dir, list(doomed.values()))


def delete(store: RunStore, runs_dir: Path, doomed: list[Doomed]) -> tuple[list[Doomed], int]:
    """Delete each run's rows (the DELETE is guarded: terminal only), then its folder, then the
    snapshot content only it referenced (still unreferenced when looked at under the store's
    lock). The runs deleted and the bytes freed (what was removed, measured as it went); a row
    already gone (another client deleted it) is skipped."""
    done: list[Doomed] = []
    freed = 0
    state_dir = runs_dir.parent
    for item in doomed:
        if not store.delete(item.record.id):
            continue
        folder = runs_dir / item.record.id
        size = folder_size(folder)
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise StorageError(f"{folder}: could not remove the run's folder ({err.strerror});"
                               " its record is gone, remove the folder by hand") from err
        objects.unmark_materialised(state_dir, item.record.id)
        done.append(item)
        freed += size
    candidates = {d: n for item in done for d, n in item.objects.items()}
    if candidates:
        freed += remove_unreferenced(runs_dir, candidates)
    return done, freed


def remove_unreferenced(runs_dir: Path, candidates: dict[str, int]) -> int:
    """Remove those of ``candidates`` (object -> bytes) that no run folder references now; the
    bytes removed."""
    store = objects.ObjectStore(runs_dir.parent)
    removed = 0
    with store.lock(exclusive=True):
        try:
            refs = objects.referenced(runs_dir, strict=True)
        except objects.ManifestUnreadable:
            return 0  # what a run's snapshot names is unknown now: everything stays
        live: set[str] = set().union(*refs.values()) if refs else set()
        for digest in candidates:
            if digest in live:
                continue  # a run submitted since uses it again
            path = store.path(digest)
            try:
                size = os.lstat(path).st_blocks * 512
                os.unlink(path)
            except OSError:
                continue
            removed += size
    return removed


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
