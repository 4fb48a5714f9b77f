"""The variables labdeck sets in every run's environment so that its output reaches the log live."""

from __future__ import annotations

# Read by Engine.plan for every run, on every target.
RUN_OUTPUT_ENV: dict[str, str] = {"PYTHONUNBUFFERED": "1"}
