"""Snapshots of the main screens at 80x24 and 120x40 (fixture store: fixed ids, times, logs).

Update after an intended change: ``pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from typing import Any

import pytest

from backends.engine import Engine
from tui.app import LabdeckApp

from .helpers import settle

SIZES = [(80, 24), (120, 40)]


def make_app(engine: Engine) -> LabdeckApp:
    return LabdeckApp(engine, poll=False)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_dashboard(snap_compare: Any, engine: Engine, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(engine), terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_failed_run_log(snap_compare: Any, engine: Engine, size: tuple[int, int]) -> None:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("down")
        await settle(pilot)

    assert snap_compare(make_app(engine), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_compare_screen(snap_compare: Any, engine: Engine, size: tuple[int, int]) -> None:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)

    assert snap_compare(make_app(engine), terminal_size=size, run_before=before)


def test_help_screen(snap_compare: Any, engine: Engine) -> None:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("f1")
        await settle(pilot)

    assert snap_compare(make_app(engine), terminal_size=(80, 24), run_before=before)
