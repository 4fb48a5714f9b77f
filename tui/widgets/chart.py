"""A one-line chart of a series metric, drawn with block characters (plain and deterministic)."""

from __future__ import annotations

from typing import Any

BLOCKS = "▁▂▃▄▅▆▇█"


def numbers(values: list[Any]) -> list[float]:
    out = []
    for value in values:
        if isinstance(value, int | float):  # bool too
            out.append(float(value))
    return out


def sparkline(values: list[Any], width: int = 30) -> str:
    """The series squeezed (by bucket means) into at most ``width`` block characters."""
    data = numbers(values)
    if not data:
        return ""
    if len(data) > width:
        step = len(data) / width
        data = [
            sum(chunk) / len(chunk)
            for chunk in (data[int(i * step):max(int((i + 1) * step), int(i * step) + 1)]
                          for i in range(width))
        ]
    low, high = min(data), max(data)
    span = high - low
    if span == 0:
        return BLOCKS[len(BLOCKS) // 2] * len(data)
    return "".join(BLOCKS[min(len(BLOCKS) - 1, int((v - low) / span * len(BLOCKS)))] for v in data)


def chart_line(name: str, values: list[Any], width: int = 30, tail: int | None = None) -> str:
    """A sparkline with min, max and last; ``tail``: the values are a series' last ``tail``
    (or all of it, when fewer), which the count says."""
    data = numbers(values)
    count = f"last {len(data)}" if tail is not None and len(values) >= tail else str(len(data))
    if not data:
        return f"{name}: {len(values)} values"
    return (f"{name}: {sparkline(values, width)}  min {min(data):.4g}  max {max(data):.4g}  "
            f"last {data[-1]:.4g}  ({count})")
