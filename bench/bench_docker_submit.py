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

import sys

from _common import (
    DOCKER_IMAGE,
    byte_compile,
    docker_project,
    labdeck_cli,
    median,
    ms,
    report,
    side_by_side,
)

GOAL_RATIO = 1.15


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    compiled = byte_compile()
    with docker_project() as root:
        docker_cli, tool = side_by_side(
            ["docker", "run", "--rm", DOCKER_IMAGE, "python", "-c", "pass"],
            [labdeck_cli(), "submit", "-c", "docker", "noop.py"], root, rounds)
    ratio = median(tool) / median(docker_cli)
    report("docker submit vs docker run", [
        f"rounds: {rounds} each, alternating; labdeck "
        + ("byte-compiled (as installed)" if compiled else "as checked out"),
        f"docker run --rm IMAGE python -c pass: median {ms(median(docker_cli))}",
        f"labdeck submit -c docker noop.py:     median {ms(median(tool))}",
        f"ratio {ratio:.2f}x (goal <= {GOAL_RATIO:.2f}x)",
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
