"""`labdeck submit -c local noop.py` against `python noop.py`, side by side.

Goals: at most 150 ms median overhead (issue 2), under 5x bare Python's start (issue 13).
With ``--trace``, each submit also runs with LABDECK_TRACE=1 (backends/phasetrace.py) and the
median time of each phase after the CLI's main() is printed: where the overhead goes.
Usage: python bench/bench_local_submit.py [ROUNDS] [--trace]
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from _common import byte_compile, labdeck_cli, median, ms, report, side_by_side

GOAL_S = 0.150
GOAL_RATIO = 5.0


def phases(root: Path) -> list[str]:
    """Median time of each traced phase after the CLI's main(), over every traced run."""
    at: dict[str, list[float]] = {}
    order: dict[str, float] = {}
    for log in (root / ".labdeck" / "runs").glob("*/supervisor.log"):
        marks = [line.split() for line in log.read_text().splitlines()
                 if line.startswith("trace ")]
        start = next((float(m[1]) for m in marks if m[3] == "cli-main"), None)
        if start is None:
            continue
        for mark in marks:
            name = f"{mark[2]} {mark[3].split('(')[0]}"
            at.setdefault(name, []).append(float(mark[1]) - start)
    for name, values in at.items():
        order[name] = statistics.median(values)
    lines, before = [], 0.0
    for name, when in sorted(order.items(), key=lambda item: item[1]):
        lines.append(f"  {name:28s} +{ms(when):>9s}  (step {ms(when - before)})")
        before = when
    return lines


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--trace"]
    trace = "--trace" in sys.argv[1:]
    rounds = int(args[0]) if args else 20
    compiled = byte_compile()
    env = dict(os.environ, LABDECK_TRACE="1") if trace else None
    root = Path(tempfile.mkdtemp(prefix="labdeck-bench-"))
    try:
        (root / "aml_config").mkdir()
        (root / "aml_config" / "local.compute").write_text('type: "local"\n')
        (root / "noop.py").write_text("pass\n")
        bare, tool = side_by_side(
            [sys.executable, "noop.py"], [labdeck_cli(), "submit", "-c", "local", "noop.py"], root,
            rounds, env=env,
        )
        traced = phases(root) if trace else []
    finally:
        shutil.rmtree(root, ignore_errors=True)
    overhead = median(tool) - median(bare)
    report(
        "local submit overhead",
        [
            f"rounds: {rounds} each, alternating; labdeck "
            + ("byte-compiled (as installed)" if compiled else "as checked out"),
            f"python noop.py:                  median {ms(median(bare))}",
            f"labdeck submit -c local noop.py: median {ms(median(tool))}",
            f"overhead: {ms(overhead)} (goal <= {ms(GOAL_S)}); "
            f"ratio {median(tool) / median(bare):.2f}x (goal < {GOAL_RATIO:.0f}x)",
            *(["phases, median time after the CLI's main() (LABDECK_TRACE=1):", *traced]
              if trace else []),
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
