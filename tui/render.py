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


def table(headers: Sequence[str], rows: Sequence[Sequence[str]],
          paint: dict[int, Callable[[str], str]] | None = None) -> str:
    """Columns padded to their widest cell; ``paint``: column index -> what a cell of it
    becomes once measured (colours take no width)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    paint = paint or {}
    for row in rows:
        cells = [(paint[i](c) if i in paint else c) + " " * (w - len(c))
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _status_paint(colour: bool) -> Callable[[str], str]:
    from .cli_style import status

    return lambda text: status(text, colour)


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


def runs_table(records: Sequence[RunRecord], sort: str | None = None,
               colour: bool = False) -> str:
    """Runs a row each; a NAME column when any has a name, and the ``sort`` metric's (or
    param's) own column first among the values when the list is sorted by it."""
    named = any(rec.name for rec in records)
    headers = ["ID", *(["NAME"] if named else []), "STATUS", "TARGET", "SCRIPT", "CREATED",
               "DURATION", *([sort.upper()] if sort else []), "METRICS"]
    rows = []
    for rec in records:
        shown = [k for k in rec.metrics if k != sort][:3]
        metrics = ", ".join(f"{k}={metric_value(rec.metrics[k])}" for k in shown)
        rows.append(
            [
                rec.id,
                *([rec.name or "-"] if named else []),
                rec.status.value,
                rec.target,
                rec.script or "-",
                when(rec.created),
                duration(rec.duration),
                *([value_of(rec, sort)] if sort else []),
                metrics,
            ]
        )
    return table(headers, rows, {headers.index("STATUS"): _status_paint(colour)} if colour
                 else None)


def value_of(rec: RunRecord, name: str) -> str:
    """A run's metric ``name`` (its last value), else its param, as a cell."""
    if name in rec.metrics:
        value = rec.metrics[name]
        return metric_value(value[-1] if isinstance(value, list) and value else value)
    if name in rec.params:
        return metric_value(rec.params[name])
    return "-"


def tags_text(tags: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" if v else k for k, v in tags.items()) or "-"


def runs_csv(records: Sequence[RunRecord]) -> str:
    """One row per run: its facts, each param (``param:NAME``) and each metric's last value."""
    import csv
    import io

    params: list[str] = []
    metrics: list[str] = []
    for rec in records:
        params += [n for n in rec.params if n not in params]
        metrics += [n for n in rec.metrics if n not in metrics]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "name", "status", "target", "script", "created", "duration_s",
                     "sweep", "tags", *[f"param:{n}" for n in params], *metrics])
    for rec in records:
        last = [rec.metrics.get(n) for n in metrics]
        writer.writerow([
            rec.id, rec.name or "", rec.status.value, rec.target, rec.script or "",
            _iso(rec.created), "" if rec.duration is None else f"{rec.duration:.3f}",
            rec.sweep or "", ";".join(f"{k}={v}" for k, v in rec.tags.items()),
            *["" if n not in rec.params else _cell(rec.params[n]) for n in params],
            *["" if v is None else _cell(v[-1] if isinstance(v, list) and v else v)
              for v in last],
        ])
    return out.getvalue().rstrip("\n")


def _cell(value: Any) -> str:
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ts))


def sweep_table(records: Sequence[RunRecord], sort: str | None, colour: bool = False) -> str:
    """A sweep's runs: their params (the grid point) and metrics, a column each."""
    params: list[str] = []
    metrics: list[str] = [sort] if sort else []
    for rec in records:
        params += [n for n in rec.params if n not in params]
        metrics += [n for n in rec.metrics if n not in metrics]
    rows = [[rec.id, rec.status.value, *[value_of_param(rec, n) for n in params],
             *[value_of(rec, n) for n in metrics], duration(rec.duration)] for rec in records]
    return table(["ID", "STATUS", *params, *metrics, "DURATION"], rows,
                 {1: _status_paint(colour)} if colour else None)


def value_of_param(rec: RunRecord, name: str) -> str:
    return metric_value(rec.params[name]) if name in rec.params else "-"


def run_details(rec: RunRecord, reason: str | None = None, colour: bool = False) -> str:
    """``runs show``: ``reason``, a failed run's last error line (tui/failure.py)."""
    from .failure import explain_exit

    status = _status_paint(colour)(rec.status.value) if colour else rec.status.value

    lines = [
        f"id:        {rec.id}",
        *([f"name:      {rec.name}"] if rec.name else []),
        f"status:    {status}" + (f" ({rec.error})" if rec.error else ""),
        *([f"error:     {reason}"] if reason and reason != rec.error else []),
        f"target:    {rec.target} ({rec.target_type})",
        f"script:    {rec.script} {' '.join(rec.args)}".rstrip(),
        f"created:   {when(rec.created)}",
        f"started:   {when(rec.started)}",
        f"ended:     {when(rec.ended)}",
        f"duration:  {duration(rec.duration)}",
        f"exit code: {explain_exit(rec.exit_code, rec.error)}",
        f"snapshot:  {rec.snapshot or '-'}",
        f"commit:    {rec.git_commit or '-'}",
    ]
    if rec.sweep:
        lines.append(f"sweep:     {rec.sweep}")
    if rec.tags:
        lines.append(f"tags:      {tags_text(rec.tags)}")
    if rec.note:
        lines.append(f"note:      {rec.note}")
    if rec.params:
        lines.append("params:")
        lines += [f"  {k}: {metric_value(v)}" for k, v in rec.params.items()]
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
    """Runs side by side, a row per fact, per param and per metric (every one any of them
    logged; a param's row reads ``param NAME``); the dashboard draws metric cells and names its
    own way."""
    names: list[str] = []
    params: list[str] = []
    for rec in records:
        names += [n for n in rec.metrics if n not in names]
        params += [n for n in rec.params if n not in params]
    rows: list[list[Any]] = [
        ["status", *[r.status.value for r in records]],
        ["script", *[r.script or "-" for r in records]],
        ["target", *[r.target for r in records]],
        ["args", *[" ".join(r.args) or "-" for r in records]],
        ["duration", *[duration(r.duration) for r in records]],
    ]
    # Rows that only runs with names or tags have (a plain comparison stays as it was).
    if any(r.name for r in records):
        rows.insert(0, ["name", *[r.name or "-" for r in records]])
    if any(r.tags for r in records):
        rows.append(["tags", *[tags_text(r.tags) for r in records]])
    for name in params:
        rows.append([metric_name(f"param {name}"), *[metric_value(r.params[name])
                                                     if name in r.params else "-"
                                                     for r in records]])
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
