"""`labdeck submit -c local noop.py` against `python noop.py`, side by side.

Goal (issue 2): at most 150 ms median overhead. Usage: python bench/bench_local_submit.py [ROUNDS]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from _common import byte_compile, labdeck_cli, median, ms, report, side_by_side

GOAL_S = 0.150


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    compiled = byte_compile()
    root = Path(tempfile.mkdtemp(prefix="labdeck-bench-"))
    try:
        (root / "aml_config").mkdir()
        (root / "aml_config" / "local.compute").write_text('type: "local"\n')
        (root / "noop.py").write_text("pass\n")
        bare, tool = side_by_side(
            [sys.executable, "noop.py"], [labdeck_cli(), "submit", "-c", "local", "noop.py"], root,
            rounds,
        )
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
            f"ratio {median(tool) / median(bare):.2f}x",
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
