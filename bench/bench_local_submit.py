"""`labdeck submit -c local noop.py` against `python noop.py`, side by side.

Goals: at most 150 ms median overhead (issue 2), under 5x bare Python's start (issue 13).
Also timed, alternating with those two in every round: the CLI's imports alone (``python -c
'import ...'`` of the modules a plain submit loads: the floor a submit cannot go below without
loading less), and, with ``--against DIR`` (repeatable), the same submit from another checkout
of labdeck (``git worktree add /tmp/old HEAD``), so a change is measured before and after in one
run on one machine's load. Each labdeck has its own project folder.
With ``--trace``, each submit also runs with LABDECK_TRACE=1 (backends/phasetrace.py) and the
median time of each phase after the CLI's main() is printed, with the process's CPU time at it
(wall time well above CPU time is waiting: the machine's load, another process).
Usage: python bench/bench_local_submit.py [ROUNDS] [--trace] [--against DIR]...
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import byte_compile, labdeck_cli, median, ms, report, timed

GOAL_S = 0.150
GOAL_RATIO = 5.0
PAUSE_S = 0.15  # between two timed commands (see the loop)
# What a plain foreground submit imports (tests/unit/test_import_budget.py keeps the rest out).
CLI_MODULES = ("tui.submitting, backends.base, backends.project, backends.runspec, backends.store,"
               " backends.zygote, backends.engine, tui.follow, tui.render, tui.cli_style")


def phases(root: Path) -> list[str]:
    """Median time of each traced phase after the CLI's main(), over every traced run, and the
    median CPU time its process had used by then."""
    at: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
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
            used = [float(f[4:]) / 1000 for f in mark[4:] if f.startswith("cpu=")]  # ms
            cpu.setdefault(name, []).extend(used)
    for name, values in at.items():
        order[name] = statistics.median(values)
    lines, before = [], 0.0
    for name, when in sorted(order.items(), key=lambda item: item[1]):
        used = f"  cpu {ms(statistics.median(cpu[name]))}" if cpu.get(name) else ""
        lines.append(f"  {name:28s} +{ms(when):>9s}  (step {ms(when - before)}){used}")
        before = when
    return lines


def compile_tree(tree: Path) -> None:
    """Byte-compile another checkout as byte_compile() does this one (unless AS_IS)."""
    if not os.environ.get("LABDECK_BENCH_AS_IS"):
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "backends"),
                        str(tree / "tui")], check=True, capture_output=True)


def project(parent: Path, name: str) -> Path:
    root = parent / name
    (root / "aml_config").mkdir(parents=True)
    (root / "aml_config" / "local.compute").write_text('type: "local"\n')
    (root / "noop.py").write_text("pass\n")
    return root


def main() -> int:
    argv = sys.argv[1:]
    trace = "--trace" in argv
    against: list[Path] = []
    rest: list[str] = []
    while argv:
        arg = argv.pop(0)
        if arg == "--against" and argv:
            against.append(Path(argv.pop(0)).resolve())
        elif arg != "--trace":
            rest.append(arg)
    rounds = int(rest[0]) if rest else 20
    compiled = byte_compile()
    for tree in against:
        compile_tree(tree)
    env = dict(os.environ, LABDECK_TRACE="1") if trace else dict(os.environ)
    parent = Path(tempfile.mkdtemp(prefix="labdeck-bench-"))
    try:
        here = project(parent, "this")
        # (name, command, folder, env): the labdeck of another checkout comes first on its path.
        cmds: list[tuple[str, list[str], Path, dict[str, str]]] = [
            ("python noop.py", [sys.executable, "noop.py"], here, env),
            ("labdeck submit -c local noop.py", [labdeck_cli(), "submit", "-c", "local",
                                                 "noop.py"], here, env),
            ("python -c 'import <the CLI's modules>'",
             [sys.executable, "-c", f"import {CLI_MODULES}"], here, env),
        ]
        for i, tree in enumerate(against):
            tree_env = dict(env, PYTHONPATH=os.pathsep.join(
                p for p in (str(tree), env.get("PYTHONPATH", "")) if p))
            cmds.append((f"labdeck of {tree}", [labdeck_cli(), "submit", "-c", "local",
                                                 "noop.py"], project(parent, f"other{i}"),
                         tree_env))
        for _ in range(2):  # warm-up
            for _name, cmd, cwd, cmd_env in cmds:
                timed(cmd, cwd, cmd_env)
        times: list[list[float]] = [[] for _ in cmds]
        cpus: list[list[float]] = [[] for _ in cmds]
        for _ in range(rounds):
            for i, (_name, cmd, cwd, cmd_env) in enumerate(cmds):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                times[i].append(timed(cmd, cwd, cmd_env))
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpus[i].append(after.ru_utime + after.ru_stime
                               - before.ru_utime - before.ru_stime)
                # A submit's supervisor records the run's end and drops its copy for a few tens
                # of ms after the CLI returned: let that pass instead of into the next command.
                time.sleep(PAUSE_S)
        traced = phases(here) if trace else []
        traced_against = [(tree, phases(parent / f"other{i}")) for i, tree in enumerate(against)
                          ] if trace else []
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    bare = median(times[0])
    tool = median(times[1])
    lines = [
        f"rounds: {rounds} each, alternating; labdeck "
        + ("byte-compiled (as installed)" if compiled else "as checked out")
        + f"; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end",
        f"overhead: {ms(tool - bare)} (goal <= {ms(GOAL_S)}); "
        f"ratio {tool / bare:.2f}x (goal < {GOAL_RATIO:.0f}x)",
    ]
    for (name, *_rest), values, used in zip(cmds, times, cpus, strict=True):
        # Each round's time over the same round's bare python: the load they shared.
        paired = sorted(v / b for v, b in zip(values, times[0], strict=True))
        lines.append(f"{name}: median {ms(median(values))}, {median(values) / bare:.2f}x; "
                     f"per round {median(paired):.2f}x ({paired[0]:.2f}-{paired[-1]:.2f}x); "
                     f"CPU {ms(median(used))}")
    lines.append("(CPU: of the process started, not of the supervisor it leaves behind; for a "
                 "submit, the CLI's alone: its script's start costs about bare python's again)")
    if trace:
        lines += ["phases, median time after the CLI's main() (LABDECK_TRACE=1):", *traced]
        for tree, traced_tree in traced_against:
            lines += [f"phases of the labdeck of {tree}:", *traced_tree]
    report("local submit overhead", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
