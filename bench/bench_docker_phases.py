"""Where a docker submit's time goes, against the docker CLI: the daemon's own events.

For `docker run --rm IMAGE python -c pass`, the same with `--init`, and `labdeck submit -c docker
noop.py`, alternating, it records when (from the command's launch) the daemon reports the
container created, started, dead and destroyed (`docker events`), and when the command returned;
and it times labdeck's own create call alone. Medians per phase. Usage:
    python bench/bench_docker_phases.py [ROUNDS]      (default 15)
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from _common import DOCKER_IMAGE, REPO, byte_compile, docker_project, labdeck_cli, median, report

EVENTS = ("create", "start", "die", "destroy")


BENCH_LABEL = "org.labdeck.bench=phases"  # on the baselines' containers; labdeck's carry theirs
LABEL_PROJECT = "org.labdeck.project"


class EventLog:
    """`docker events` of this bench's containers (the daemon may run others meanwhile), as
    (unix time, action) in arrival order."""

    def __init__(self, project: Path) -> None:
        self.project = str(project)
        self.seen: list[tuple[float, str]] = []
        self.proc = subprocess.Popen(
            ["docker", "events", "--format", "{{json .}}", "--filter", "type=container"],
            stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        time.sleep(0.5)  # the stream is open before the first command

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            labels = event.get("Actor", {}).get("Attributes", {})
            key, _, value = BENCH_LABEL.partition("=")
            if labels.get(key) == value or labels.get(LABEL_PROJECT) == self.project:
                self.seen.append((event["timeNano"] / 1e9, event["Action"]))

    def phases(self, command: list[str], cwd: Path) -> dict[str, float]:
        """ms from the launch to each event of the one container the command made, and to its
        return ("end")."""
        self.seen.clear()
        start = time.time()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True)
        end = time.time()
        deadline = time.monotonic() + 5
        while "destroy" not in [a for _, a in self.seen] and time.monotonic() < deadline:
            time.sleep(0.01)
        found = {action: 1000 * (t - start) for t, action in self.seen if action in EVENTS}
        found["end"] = 1000 * (end - start)
        return found

    def close(self) -> None:
        self.proc.kill()


def create_call_ms(rounds: int) -> float:
    """A bare POST /containers/create (image and command only) through labdeck's blocking
    client, then removed: the daemon's share of the create."""
    sys.path.insert(0, str(REPO))
    from backends.docker.client import docker_url
    from backends.docker.sync import SyncDockerAPI

    api = SyncDockerAPI(docker_url())
    times = []
    for _ in range(rounds):
        begin = time.perf_counter()
        cid = api.create({"Image": DOCKER_IMAGE, "Cmd": ["python3", "-c", "pass"]})
        times.append(1000 * (time.perf_counter() - begin))
        api.remove(cid)
    api.close()
    return median(times)


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    byte_compile()
    run = ["docker", "run", "--rm", "--label", BENCH_LABEL]
    commands = {
        "docker run --rm": [*run, DOCKER_IMAGE, "python", "-c", "pass"],
        "docker run --rm --init": [*run, "--init", DOCKER_IMAGE, "python", "-c", "pass"],
        "labdeck submit": [labdeck_cli(), "submit", "-c", "docker", "noop.py"],
    }
    with docker_project() as root:
        events = EventLog(root)
        try:
            got: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
            for _ in range(rounds):
                for name, command in commands.items():
                    got[name].append(events.phases(command, root))
        finally:
            events.close()
        create_ms = create_call_ms(rounds)
    lines = [f"rounds: {rounds} each, alternating; ms from the command's launch (medians)",
             f"{'':24} {'created':>8} {'started':>8} {'died':>8} {'destroyed':>10} {'returned':>9}"]
    for name, runs in got.items():
        def at(key: str, runs: list[dict[str, float]] = runs) -> float:
            return median([r[key] for r in runs if key in r])
        lines.append(f"{name:24} {at('create'):8.1f} {at('start'):8.1f} {at('die'):8.1f} "
                     f"{at('destroy'):10.1f} {at('end'):9.1f}")
        lines.append(f"{'':24} created->started {at('start') - at('create'):.1f}, "
                     f"died->destroyed {at('destroy') - at('die'):.1f}")
    lines.append(f"a bare create call alone: {create_ms:.1f} ms")
    report("docker submit phases", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
