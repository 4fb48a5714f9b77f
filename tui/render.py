"""Plain-text rendering shared by CLI verbs (no rich import: keeps ``labdeck submit`` fast)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence

from backends.logfile import LogEntry
from backends.store import RunRecord

TYPE_CHECKING = False  # typing costs ~3 ms of a submit
if TYPE_CHECKING:
    from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def metric_value(value: Any) -> str:
    if isinstance(value, list):
        last = value[-1] if value else None
        return f"[{len(value)} values, last {metric_value(last)}]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def runs_table(records: Sequence[RunRecord]) -> str:
    rows = []
    for rec in records:
        metrics = ", ".join(f"{k}={metric_value(v)}" for k, v in list(rec.metrics.items())[:3])
        rows.append(
            [
                rec.id,
                rec.status.value,
                rec.target,
                rec.script or "-",
                when(rec.created),
                duration(rec.duration),
                metrics,
            ]
        )
    return table(["ID", "STATUS", "TARGET", "SCRIPT", "CREATED", "DURATION", "METRICS"], rows)


def run_details(rec: RunRecord) -> str:
    lines = [
        f"id:        {rec.id}",
        f"status:    {rec.status.value}" + (f" ({rec.error})" if rec.error else ""),
        f"target:    {rec.target} ({rec.target_type})",
        f"script:    {rec.script} {' '.join(rec.args)}".rstrip(),
        f"created:   {when(rec.created)}",
        f"started:   {when(rec.started)}",
        f"ended:     {when(rec.ended)}",
        f"duration:  {duration(rec.duration)}",
        f"exit code: {'-' if rec.exit_code is None else rec.exit_code}",
        f"snapshot:  {rec.snapshot or '-'}",
        f"commit:    {rec.git_commit or '-'}",
    ]
    if rec.metrics:
        lines.append("metrics:")
        lines += [f"  {k}: {metric_value(v)}" for k, v in rec.metrics.items()]
    if rec.outputs:
        lines.append("outputs:")
        lines += [f"  outputs/{o}" for o in rec.outputs]
    return "\n".join(lines)


def compare_rows(
    records: Sequence[RunRecord],
    metric_cell: Callable[[Any], Any] = metric_value,
    metric_name: Callable[[str], Any] = str,
) -> list[list[Any]]:
    """Runs side by side, a row per fact and per metric (every metric any of them logged);
    the dashboard draws metric cells and names its own way."""
    names: list[str] = []
    for rec in records:
        names += [n for n in rec.metrics if n not in names]
    rows: list[list[Any]] = [
        ["status", *[r.status.value for r in records]],
        ["script", *[r.script or "-" for r in records]],
        ["target", *[r.target for r in records]],
        ["args", *[" ".join(r.args) or "-" for r in records]],
        ["duration", *[duration(r.duration) for r in records]],
    ]
    for name in names:
        rows.append([metric_name(name), *[metric_cell(r.metrics[name]) if name in r.metrics
                                          else "-" for r in records]])
    return rows


def compare(records: Sequence[RunRecord]) -> str:
    return table(["", *[r.id for r in records]], [[str(c) for c in row]
                                                  for row in compare_rows(records)])


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False)


def log_line(entry: LogEntry, timestamps: bool = False) -> str:
    prefix = f"{entry.ts} " if timestamps and entry.ts else ""
    if entry.stream == "sys":
        return f"{prefix}[labdeck] {entry.text}"
    if entry.stream == "met":
        return f"{prefix}[metric] {entry.text}"
    return prefix + entry.text
