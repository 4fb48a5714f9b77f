"""The variables labdeck sets in every run's environment so that its output reaches the log live.

Not PYTHONUNBUFFERED: a write per print made a script that logs every step up to 8x slower than
from the shell. labdeck's start-up hook (shim/sitecustomize.py, on every run's PYTHONPATH) keeps
Python's block-buffered stdout and flushes it every ``LABDECK_FLUSH_S`` seconds, before stderr
writes, forks, execs and at exit (see there). PYTHONUNBUFFERED is set empty (Python reads an
empty value as unset): a value inherited from the shell (local) or baked into an image (docker,
``ENV PYTHONUNBUFFERED=1``) would bring the slow path back.
"""

from __future__ import annotations

FLUSH_S = 0.05  # the most a printed line waits in the script before it is written out

# Read by Engine.plan for every run, on every target.
RUN_OUTPUT_ENV: dict[str, str] = {"LABDECK_FLUSH_S": str(FLUSH_S), "PYTHONUNBUFFERED": ""}
