"""CLI verbs about a run's snapshot and contents (rerun, diff, export, the store's size).

Imported at the end of ``tui/cli.py`` so that its commands register on the ``cli`` and ``runs``
groups defined there.
"""

from __future__ import annotations
