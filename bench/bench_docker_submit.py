"""`labdeck submit -c docker noop.py` on a prepared image against
`docker run --rm IMAGE python -c pass`, side by side.

Goal (issue 3): at most 1.15 times the docker CLI. Usage:
    python bench/bench_docker_submit.py [ROUNDS]     (default 20; needs the Docker daemon and
                                                      labdeck/python-base:bookworm)

labdeck's own modules are byte-compiled first, as an installed package has them (this checkout
may run with PYTHONDONTWRITEBYTECODE=1, which would recompile them on every start: ~50 ms);
LABDECK_BENCH_AS_IS=1 measures the checkout as it is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REPO, median, ms, report, side_by_side

GOAL_RATIO = 1.15
IMAGE = "labdeck/python-base:bookworm"


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode:
        raise SystemExit(f"{IMAGE} missing: run scripts/build-base-image.sh")
    as_is = bool(os.environ.get("LABDECK_BENCH_AS_IS"))
    if not as_is:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "backends"),
                        str(REPO / "tui")], check=True, capture_output=True)
    root = Path(tempfile.mkdtemp(prefix="labdeck-bench-"))
    labdeck = shutil.which("labdeck") or str(Path(sys.executable).parent / "labdeck")
    try:
        (root / "aml_config").mkdir()
        (root / "aml_config" / "docker.compute").write_text(
            f'type: docker\nbaseDockerImage: "{IMAGE}"\n')
        (root / "noop.py").write_text("pass\n")
        subprocess.run([labdeck, "prepare", "-c", "docker"], cwd=root, check=True,
                       capture_output=True)
        docker_cli, tool = side_by_side(
            ["docker", "run", "--rm", IMAGE, "python", "-c", "pass"],
            [labdeck, "submit", "-c", "docker", "noop.py"], root, rounds)
    finally:
        ids = subprocess.run(["docker", "ps", "-aq", "--filter",
                              f"label=org.labdeck.project={root}"],
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    ratio = median(tool) / median(docker_cli)
    report("docker submit vs docker run", [
        f"rounds: {rounds} each, alternating; labdeck "
        + ("as checked out" if as_is else "byte-compiled (as installed)"),
        f"docker run --rm IMAGE python -c pass: median {ms(median(docker_cli))}",
        f"labdeck submit -c docker noop.py:     median {ms(median(tool))}",
        f"ratio {ratio:.2f}x (goal <= {GOAL_RATIO:.2f}x)",
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
