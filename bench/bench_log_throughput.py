"""Log throughput and live lag (issue 13), side by side in one run.

1. A training-style script printing 1,000,000 lines: ``python spam.py > file`` (the shell) vs
   ``labdeck submit -c local spam.py > file``, and ``docker run ... python3 spam.py > file`` vs
   ``labdeck submit -c docker spam.py > file``, alternating, medians. Goal: at most 1.2x. Also
   ``labdeck submit`` of an empty script, so that the fixed cost of a submit (start, follow,
   end) is apart from the per-line cost.
2. Every run's log holds every line, in order (checked, not assumed).
3. Live lag: a script prints its own ``time.time()`` every 10 ms; this process tails the run's
   log and notes when each line appears there. p50 and p99; goal: p99 under 150 ms.

Every command runs without PYTHONUNBUFFERED (a shell's or an image's value would measure the
unbuffered path on one side only). Docker parts are skipped without a daemon and base image.
Usage: python bench/bench_log_throughput.py [ROUNDS] [LINES] [local|docker|both]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import DOCKER_IMAGE, byte_compile, labdeck_cli, median, ms, report

GOAL_RATIO = 1.2
GOAL_P99_S = 0.150
LAG_LINES = 300

SPAM = """import sys
n = int(sys.argv[1])
for i in range(n):
    print(f"epoch {i // 10000} step {i} loss={1 / (i + 1):.6f}")
"""
LAG = f"""import time
for i in range({LAG_LINES}):
    print(f"lag {{i}} {{time.time():.6f}}")
    time.sleep(0.01)
"""


def env() -> dict[str, str]:
    clean = dict(os.environ)
    clean.pop("PYTHONUNBUFFERED", None)
    return clean


def timed(cmd: list[str], cwd: Path, out: Path) -> float:
    start = time.perf_counter()
    with open(out, "wb") as fh:
        proc = subprocess.run(cmd, cwd=cwd, env=env(), stdout=fh, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]!r}")
    return elapsed


def docker_ok() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "image", "inspect", DOCKER_IMAGE],
                          capture_output=True).returncode == 0


def last_run_log(root: Path) -> Path:
    runs = sorted((root / ".labdeck" / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    return runs[-1] / "log"


def check_log(log: Path, lines: int) -> str:
    """Every spam line in the run's log, in order."""
    outs = [raw.split(" ", 2)[2] for raw in log.read_text().split("\n")[:-1]
            if raw.split(" ", 2)[1:2] == ["out"]]
    expected = [f"epoch {i // 10000} step {i} loss={1 / (i + 1):.6f}" for i in range(lines)]
    if outs == expected:
        return f"all {lines:,} lines, in order"
    return f"LOST OR REORDERED: {len(outs):,} of {lines:,} lines"


def lag(root: Path, target: str) -> tuple[float, float, int]:
    """Submit lag.py, tail its log as a client would (polling every ms); (p50, p99, lines)."""
    res = subprocess.run([labdeck_cli(), "submit", "-a", "-c", target, "lag.py"], cwd=root,
                         env=env(), capture_output=True, text=True, check=True)
    run_id = res.stdout.strip().splitlines()[0]
    log = root / ".labdeck" / "runs" / run_id / "log"
    lags: list[float] = []
    offset, partial = 0, b""
    deadline = time.monotonic() + 120
    while len(lags) < LAG_LINES and time.monotonic() < deadline:
        try:
            with open(log, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except FileNotFoundError:
            data = b""
        now = time.time()
        if data:
            offset += len(data)
            *done, partial = (partial + data).split(b"\n")
            for raw in done:
                parts = raw.decode().split(" ")
                if parts[1:3] == ["out", "lag"]:
                    lags.append(now - float(parts[4]))
        else:
            time.sleep(0.001)
    subprocess.run([labdeck_cli(), "runs", "logs", run_id, "-f"], cwd=root, env=env(),
                   capture_output=True)
    lags.sort()
    p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
    return statistics.median(lags), p99, len(lags)


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    lines = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    which = sys.argv[3] if len(sys.argv) > 3 else "both"
    compiled = byte_compile()
    with_docker = which != "local" and docker_ok()
    with_local = which != "docker"
    root = Path(tempfile.mkdtemp(prefix="labdeck-bench-"))
    out = root.parent / f"{root.name}.out"
    try:
        (root / "aml_config").mkdir()
        (root / "aml_config" / "local.compute").write_text('type: "local"\n')
        (root / "aml_config" / "docker.compute").write_text(
            f'type: docker\nbaseDockerImage: "{DOCKER_IMAGE}"\n')
        (root / "spam.py").write_text(SPAM)
        (root / "noop.py").write_text("pass\n")
        (root / "lag.py").write_text(LAG)
        if with_docker:
            subprocess.run([labdeck_cli(), "prepare", "-c", "docker"], cwd=root, env=env(),
                           check=True, capture_output=True)
        py = [sys.executable, "spam.py", str(lines)]
        commands = {"shell": py}
        if with_local:
            commands["local"] = [labdeck_cli(), "submit", "-c", "local", "spam.py", str(lines)]
            commands["local-noop"] = [labdeck_cli(), "submit", "-c", "local", "noop.py"]
        if with_docker:
            commands["docker-run"] = [
                "docker", "run", "--rm", "-e", "PYTHONUNBUFFERED=", "-v", f"{root}:/w", "-w",
                "/w", DOCKER_IMAGE, "python3", "spam.py", str(lines)]
            commands["docker"] = [labdeck_cli(), "submit", "-c", "docker", "spam.py",
                                  str(lines)]
        times: dict[str, list[float]] = {name: [] for name in commands}
        checks: dict[str, str] = {}
        for name, cmd in commands.items():  # warm-up, and the check of each kind of run
            timed(cmd, root, out)
            if name in ("local", "docker"):
                checks[name] = check_log(last_run_log(root), lines)
        for _ in range(rounds):
            for name, cmd in commands.items():
                times[name].append(timed(cmd, root, out))
        lags = {"local": lag(root, "local")} if with_local else {}
        if with_docker:
            lags["docker"] = lag(root, "docker")
    finally:
        ids = subprocess.run(["docker", "ps", "-aq", "--filter",
                              f"label=org.labdeck.project={root}"],
                             capture_output=True, text=True).stdout.split() if with_docker else []
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        out.unlink(missing_ok=True)
    med = {name: median(values) for name, values in times.items()}
    result = [
        f"{lines:,} lines; rounds: {rounds} each, alternating; labdeck "
        + ("byte-compiled (as installed)" if compiled else "as checked out")
        + "; no PYTHONUNBUFFERED anywhere",
        f"python spam.py > file:               median {ms(med['shell'])}",
    ]
    if with_local:
        result += [
            f"labdeck submit -c local spam.py > f: median {ms(med['local'])}  "
            f"ratio {med['local'] / med['shell']:.2f}x (goal <= {GOAL_RATIO}x)",
            f"labdeck submit -c local noop.py:     median {ms(med['local-noop'])}  "
            f"(per-line part: {(med['local'] - med['local-noop']) / med['shell']:.2f}x "
            "of the shell's time with a submit's fixed cost taken out)",
            f"local run's log: {checks['local']}",
        ]
    if with_docker:
        result += [
            f"docker run ... > file:               median {ms(med['docker-run'])}",
            f"labdeck submit -c docker spam.py > f: median {ms(med['docker'])}  "
            f"ratio {med['docker'] / med['docker-run']:.2f}x (goal <= {GOAL_RATIO}x)",
            f"docker run's log: {checks['docker']}",
        ]
    elif which != "local":
        result.append("docker: skipped (no daemon or no base image)")
    for name, (p50, p99, seen) in lags.items():
        result.append(f"live lag, {name}: p50 {ms(p50)}, p99 {ms(p99)} over {seen} lines "
                      f"(goal p99 < {ms(GOAL_P99_S)})")
    report("log throughput and live lag", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
