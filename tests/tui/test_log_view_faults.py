"""A filter whose scan fails (a read error) must not leave the log view frozen: before, the view
stayed "filtering…" for good and stopped tailing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.widgets import log_view
from tui.widgets.log_view import LogView

from .helpers import until
from .test_log_view import Host, write_log


async def test_a_failed_filter_scan_leaves_the_view_tailing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "log"
    write_log(path, 50)

    def broken(*_args: object, **_kw: object) -> log_view.ScanResult:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(log_view, "scan", broken)
    app = Host(path, window=100)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(LogView)
        view.focus()
        await pilot.press("ampersand", *"line 1", "enter")
        await until(pilot, lambda: not view.scanning, "the failed scan is over")
        assert view.filter_text is None  # the whole log again, and the reason said
        assert any("Input/output error" in n.message for n in app._notifications)
        write_log(path, 3, 50)
        await until(pilot, lambda: view.lines[-1].endswith("line 52"), "tailing goes on")
