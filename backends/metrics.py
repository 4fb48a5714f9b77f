"""The metric channel: one marked line on the script's stdout per logged value.

A line is the one thing every target carries live (a pipe, a container's log stream, an SSH channel,
a Spark driver's output), so metrics need no side channel, no port and nothing installed remotely.
The supervisor takes marked lines out of the stream and stores them; the shim in ``shim/`` writes
them (it is standalone on purpose: it is copied into containers and snapshots as is).

Params (``log_param``) and tags (``set_tag``) travel the same way: the same marker (so whatever
strips metric lines strips them too) with a ``"kind"`` of ``"param"`` or ``"tag"``.
"""

from __future__ import annotations

import json
from pathlib import Path

TYPE_CHECKING = False  # importing typing costs ~3 ms of a submit; annotations need none
if TYPE_CHECKING:
    from typing import Any

MARKER = "\x1e@@labdeck:metric "  # \x1e (record separator) keeps accidental matches away
SHIM_DIR = Path(__file__).resolve().parent / "shim"
METRIC, PARAM, TAG = "metric", "param", "tag"  # PARAM and TAG as store.PARAM, store.TAG


class Key(str):
    """A param's or a tag's name: a ``str`` that knows its kind. ``parse`` returns one as the
    name of such a record, so the supervisor's ``(name, value)`` handling passes it on to
    ``RunStore.add_metrics`` unchanged, which files it by kind (and its log line reads
    ``param NAME = VALUE``)."""

    __slots__ = ("kind",)
    kind: str

    def __new__(cls, name: str, kind: str) -> Key:
        key = super().__new__(cls, name)
        key.kind = kind
        return key

    def __format__(self, spec: str) -> str:
        return format(f"{self.kind} {self!s}", spec)


def encode(name: str, value: Any, kind: str = METRIC) -> str:
    record: dict[str, Any] = {"name": name, "value": value}
    if kind != METRIC:
        record["kind"] = kind
    return MARKER + json.dumps(record, separators=(",", ":"))


def parse(line: str) -> tuple[str, Any] | None:
    """``(name, value)`` when ``line`` is a metric record, else None; for a param or a tag
    record the name is a ``Key`` of that kind (``kind_of`` tells)."""
    if not line.startswith(MARKER):
        return None
    try:
        record = json.loads(line[len(MARKER) :])
        name = record["name"]
        value = record["value"]
        kind = record.get("kind", METRIC)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(name, str):
        return None
    if kind == METRIC:
        return name, value
    if kind == TAG:
        return Key(name, TAG), str(value)
    if kind == PARAM and (value is None or isinstance(value, str | int | float | bool)):
        return Key(name, PARAM), value
    return None  # an unknown kind (a newer shim) or a param that is not a scalar


def kind_of(name: str) -> str:
    return getattr(name, "kind", METRIC)
