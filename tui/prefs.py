"""The dashboard's choices kept per project (``.labdeck/dashboard.json``): which metrics the runs
table shows as columns and how it is sorted. A missing or unreadable file is the defaults; a
write goes to a temporary file renamed over the old one (two dashboards never leave half a
file)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

FILE = "dashboard.json"


@dataclass
class Prefs:
    metric_columns: list[str] | None = None  # None: the metrics most runs have
    sort: str = "created"
    extra: dict[str, object] = field(default_factory=dict)


def load(state_dir: Path) -> Prefs:
    try:
        data = json.loads((state_dir / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Prefs()
    if not isinstance(data, dict):
        return Prefs()
    columns = data.get("metric_columns")
    sort = data.get("sort")
    return Prefs(
        [str(c) for c in columns] if isinstance(columns, list) else None,
        sort if isinstance(sort, str) else "created",
    )


def save(state_dir: Path, prefs: Prefs) -> None:
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = state_dir / f".{FILE}.{os.getpid()}"
        data = {k: v for k, v in asdict(prefs).items() if k != "extra"}
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, state_dir / FILE)
    except OSError:
        pass  # a read-only project: the choice lasts this session
