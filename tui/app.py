"""Placeholder until the dashboard lands: keeps ``labdeck`` usable."""

from __future__ import annotations

from typing import Any


def run_app(engine: Any, target: str = "local", submit_script: str | None = None) -> None:
    raise SystemExit("the dashboard is not built yet; use 'labdeck submit'")
