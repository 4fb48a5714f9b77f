"""``labdeck runs diff A B``: the files that changed between two runs' snapshots (a unified diff
of text files, read from the object store), and their params, metrics and how they ran side by
side."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from .objects import Manifest, ManifestEntry, ObjectStore
from .store import RunRecord

TEXT_LIMIT = 1 << 20  # larger files are compared by hash only


@dataclass
class FileChange:
    path: str
    change: str  # "added", "removed", "modified", "mode"
    a: ManifestEntry | None
    b: ManifestEntry | None
    diff: list[str] = field(default_factory=list)  # unified diff lines (text files)
    binary: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "change": self.change,
                "a": None if self.a is None else {"sha256": self.a.sha256, "size": self.a.size,
                                                  "mode": oct(self.a.mode)},
                "b": None if self.b is None else {"sha256": self.b.sha256, "size": self.b.size,
                                                  "mode": oct(self.b.mode)},
                "binary": self.binary, "diff": "".join(self.diff)}


@dataclass
class SideBySide:
    kind: str  # "run", "param", "metric", "tag"
    name: str
    a: Any
    b: Any

    @property
    def same(self) -> bool:
        return bool(self.a == self.b)


def diff_manifests(a: Manifest, b: Manifest) -> list[FileChange]:
    """Changed files by path: added, removed, content modified, or only the mode changed."""
    left, right = a.by_path(), b.by_path()
    changes = []
    for path in sorted(left.keys() | right.keys()):
        x, y = left.get(path), right.get(path)
        if x is None:
            changes.append(FileChange(path, "added", None, y))
        elif y is None:
            changes.append(FileChange(path, "removed", x, None))
        elif x.sha256 != y.sha256:
            changes.append(FileChange(path, "modified", x, y))
        elif x.mode != y.mode:
            changes.append(FileChange(path, "mode", x, y))
    return changes


def _text(store: ObjectStore, entry: ManifestEntry | None) -> list[str] | None:
    """The file's lines, [] when absent; None when it is not text (or too big to show)."""
    if entry is None:
        return []
    if entry.size > TEXT_LIMIT:
        return None
    data = store.read_bytes(entry.sha256)  # checked: a damaged object is an error, not a diff
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return None


def add_unified(store: ObjectStore, changes: list[FileChange], label_a: str, label_b: str,
                context: int = 3) -> None:
    for change in changes:
        if change.change == "mode":
            continue
        old, new = _text(store, change.a), _text(store, change.b)
        if old is None or new is None:
            change.binary = True
            continue
        lines = list(difflib.unified_diff(
            old, new, fromfile=f"a/{change.path} ({label_a})" if change.a else "/dev/null",
            tofile=f"b/{change.path} ({label_b})" if change.b else "/dev/null", n=context))
        change.diff = [line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                       for line in lines]


def side_by_side(a: RunRecord, b: RunRecord) -> list[SideBySide]:
    """How the runs ran (target, script, args, status), then params, metrics and tags."""
    rows = [
        SideBySide("run", "target", a.target, b.target),
        SideBySide("run", "script", a.script, b.script),
        SideBySide("run", "args", " ".join(a.args), " ".join(b.args)),
        SideBySide("run", "status", a.status.value, b.status.value),
        SideBySide("run", "exit code", a.exit_code, b.exit_code),
        SideBySide("run", "snapshot", (a.snapshot or "")[:12], (b.snapshot or "")[:12]),
    ]
    for kind, x, y in (("param", a.params, b.params), ("metric", a.metrics, b.metrics),
                       ("tag", a.tags, b.tags)):
        for name in sorted(x.keys() | y.keys()):
            rows.append(SideBySide(kind, name, _last(x.get(name)), _last(y.get(name))))
    return rows


def _last(value: Any) -> Any:
    """A series' last value (metrics logged many times are lists)."""
    if isinstance(value, list):
        return value[-1] if value else None
    return value
