"""The metric channel: one marked line on the script's stdout per logged value.

A line is the one thing every target carries live (a pipe, a container's log stream, an SSH channel,
a Spark driver's output), so metrics need no side channel, no port and nothing installed remotely.
The supervisor takes marked lines out of the stream and stores them; the shim in ``shim/`` writes
them (it is standalone on purpose: it is copied into containers and snapshots as is).
"""

from __future__ import annotations

import json
from pathlib import Path

TYPE_CHECKING = False  # importing typing costs ~3 ms of a submit; annotations need none
if TYPE_CHECKING:
    from typing import Any

MARKER = "\x1e@@labdeck:metric "  # \x1e (record separator) keeps accidental matches away
SHIM_DIR = Path(__file__).resolve().parent / "shim"


def encode(name: str, value: Any) -> str:
    return MARKER + json.dumps({"name": name, "value": value}, separators=(",", ":"))


def parse(line: str) -> tuple[str, Any] | None:
    """``(name, value)`` when ``line`` is a metric record, else None."""
    if not line.startswith(MARKER):
        return None
    try:
        record = json.loads(line[len(MARKER) :])
        name = record["name"]
        value = record["value"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(name, str):
        return None
    return name, value
