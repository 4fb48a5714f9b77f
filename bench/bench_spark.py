"""`labdeck submit` of iris_spark.py 0.1 against the same spark-submit run directly, on local
Spark (spark-local) and on the standalone cluster in client mode (spark-standalone, the rig of
scripts/start-spark.sh). Goal (issue 9): labdeck's overhead at most 5% of the run.

Made for a loaded 2-core machine, where one Spark run swings by +-50% from the next:
- strictly interleaved pairs, the order flipped every pair (labdeck, direct, direct, labdeck,
  ...), one pair per target in turn; the first WARMUP pairs of each target are discarded (page
  cache, the JVM's class data, the master's first app);
- the figure is each pair's ratio labdeck / direct, summed up by median, inter-quartile range and
  range, never a ratio of medians;
- beside wall time, CPU time: the children's rusage (user + sys) of each command's whole process
  tree. This process is a child subreaper, so every descendant (labdeck's supervisor, spark-submit's
  JVM, the Python driver, its workers) ends up reaped here and counted; the next command starts only
  once the tree is gone. On the standalone cluster the executors are the worker's children, counted
  for neither side;
- the time from the command's start to the driver's first line ("Spark version: ...") for both.

The baseline is labdeck's own line, from `labdeck submit --explain`: the same spark-submit
arguments and the same environment (PYSPARK_PYTHON, the output hook on PYTHONPATH, LABDECK_FLUSH_S,
AZUREML_*), so the difference is what labdeck's process adds (CLI, snapshot, record, supervisor,
log). --bare instead runs what a user would type (spark-submit --master M script args, with
PYSPARK_PYTHON only): the difference then also holds labdeck's --conf lines and hook.
--trace runs labdeck with LABDECK_TRACE=1 and splits its wall time into before spark-submit's
start, spark-submit's run under labdeck, and after its exit (backends/phasetrace.py).

Usage: python bench/bench_spark.py [PAIRS] [--warmup N] [--small] [--bare] [--trace]
       [--only spark-local|spark-standalone]
(PAIRS measured pairs per target, default 6; a pair of iris runs is ~30-60 s at load 8 on 2 cores;
--small: a minimal app, a SparkSession, one count and its stop)
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import REPO, byte_compile, labdeck_cli

FIRST = b"Spark version:"
SMALL = """\
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
print("Spark version:", spark.version, flush=True)
print("rows", spark.range(1000).count())
spark.stop()
"""
GOAL = 1.05
TARGETS = ("spark-local", "spark-standalone")
PR_SET_CHILD_SUBREAPER = 36
TREE_TIMEOUT_S = 120.0
SUP_CPU = re.compile(r"sup-end\(cpu ([\d.]+)u\+([\d.]+)s\)")


@dataclass
class Sample:
    wall: float  # the command's start to its exit
    first: float  # the command's start to the driver's first line
    cpu: float  # user + sys of its whole process tree
    tree: float  # its exit to the last descendant's end
    own_cpu: float  # user + sys of the command's own process and the children it waited for
    load: float  # the 1-minute load average at its start
    start_epoch: float  # time.time() at its start (for --trace)
    lines: list[str] = field(default_factory=list)


def become_subreaper() -> None:
    """Orphans of the measured commands (a daemonized supervisor) are re-parented here, so
    that they are waited for and their CPU time lands in RUSAGE_CHILDREN."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit(f"prctl(PR_SET_CHILD_SUBREAPER): errno {ctypes.get_errno()}")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def reap_tree() -> None:
    """Wait until no descendant is left (each one is a child here once its parent is gone)."""
    deadline = time.monotonic() + TREE_TIMEOUT_S
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() > deadline:
                raise SystemExit(f"descendants still alive {TREE_TIMEOUT_S:.0f} s after the "
                                 "command's end")
            time.sleep(0.01)


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> Sample:
    """One command, its output read live (stdout and stderr merged, as on a terminal)."""
    load = os.getloadavg()[0]
    cpu0 = children_cpu()
    epoch = time.time()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    first: list[float] = []
    lines: list[bytes] = []

    def read() -> None:  # a thread: a descendant may hold the pipe past the command's exit
        assert proc.stdout is not None
        for line in proc.stdout:
            if not first and FIRST in line:
                first.append(time.perf_counter() - start)
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)  # (not proc.wait(): its rusage is wanted)
    wall = time.perf_counter() - start
    code = proc.returncode = os.waitstatus_to_exitcode(status)
    reap_tree()
    tree = time.perf_counter() - start - wall
    reader.join()
    cpu = children_cpu() - cpu0
    text = [line.decode(errors="replace").rstrip("\n") for line in lines]
    if code != 0 or not first:
        why = f"failed ({code})" if code else f"no {FIRST.decode()!r} line"
        raise SystemExit(f"{why}: {shlex.join(cmd)}\n" + "\n".join(text[-20:]))
    return Sample(wall, first[0], cpu, tree, usage.ru_utime + usage.ru_stime, load, epoch,
                  text)


def explained(root: Path, target: str, script: list[str]) -> tuple[list[str], dict[str, str]]:
    """labdeck's spark-submit line and the variables it sets, from `submit --explain`."""
    out = subprocess.run([labdeck_cli(), "submit", "--explain", "-c", target, *script],
                         cwd=root, capture_output=True, text=True, check=True).stdout
    env: dict[str, str] = {}
    command: list[str] = []
    for line in out.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = shlex.split(value)[0] if value else ""
        elif line and not line.startswith(("#", "cd ")):
            command = shlex.split(line)
    if not command:
        raise SystemExit(f"no command in labdeck's --explain for {target}:\n{out}")
    run_id = "<run-id>"
    fix = {"AZUREML_RUN_ID", "LABDECK_RUN_ID"}
    env = {k: (f"bench-direct-{target}" if k in fix else v) for k, v in env.items()}
    command = [a.replace(run_id, f"bench-direct-{target}") for a in command]
    return command, env


def bare(facts: dict[str, str], master: str, script: list[str]) -> tuple[list[str], dict[str, str]]:
    """What a user would type: no --conf, no hook; the driver runs this Python."""
    return ([facts["spark_submit"], "--master", master, *script],
            {"PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable})


def spread(values: list[float]) -> tuple[float, float, float, float, float]:
    """median, first and third quartile, min, max."""
    if len(values) < 2:
        return (values[0],) * 5
    q1, med, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return med, q1, q3, min(values), max(values)


def phases(run_dir: Path, sample: Sample) -> dict[str, float]:
    """Seconds from the command's start to each traced mark of one labdeck run (the first of
    each: the driver's Python workers note a "script start" too)."""
    at: dict[str, float] = {}
    path = run_dir / "supervisor.log"
    text = path.read_text(errors="replace") if path.is_file() else ""
    for line in text.splitlines():
        parts = line.split(maxsplit=3)
        if len(parts) == 4 and parts[0] == "trace":
            key = f"{parts[2]} {parts[3].split()[0].split('(')[0]}"  # less "(...)", "cpu=N"
            at.setdefault(key, float(parts[1]) - sample.start_epoch)
            if found := SUP_CPU.match(parts[3]):  # the supervisor's own CPU time
                at["supervisor cpu"] = float(found[1]) + float(found[2])
    at["cli cpu"] = sample.own_cpu
    at["tree cpu"] = sample.cpu
    return at


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", nargs="?", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--only", choices=TARGETS)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--bare", action="store_true")
    parser.add_argument("--trace", action="store_true")
    opts = parser.parse_args()
    pairs, warmup = opts.pairs, opts.warmup
    targets = [opts.only] if opts.only else list(TARGETS)
    script = ["small_app.py"] if opts.small else ["iris_spark.py", "0.1"]
    facts_file = REPO / ".labdeck-rigs" / "spark.json"
    if not facts_file.is_file():
        raise SystemExit("the Spark rig is not up: bash scripts/start-spark.sh")
    facts = json.loads(facts_file.read_text())
    compiled = byte_compile()
    become_subreaper()
    root = Path(tempfile.mkdtemp(prefix="labdeck-bench-spark-"))
    try:
        shutil.copytree(REPO / "sample_project", root, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".labdeck", "outputs", "__pycache__"))
        (root / "small_app.py").write_text(SMALL)
        env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1")
        tool_env = dict(env, LABDECK_TRACE="1") if opts.trace else env
        masters = {"spark-local": "local[*]", "spark-standalone": facts["master_url"]}
        cmds: dict[str, tuple[list[str], dict[str, str], list[str]]] = {}
        for name in targets:
            direct, extra = (bare(facts, masters[name], script) if opts.bare
                             else explained(root, name, script))
            cmds[name] = (direct, {**env, **extra}, [labdeck_cli(), "submit", "-c", name, *script])
            print(f"{name}: direct = {shlex.join(direct)}", flush=True)
        got: dict[str, list[tuple[Sample, Sample]]] = {name: [] for name in targets}
        traced: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        runs_dir = root / ".labdeck" / "runs"
        for k in range(warmup + pairs):
            for name in targets:
                direct, direct_env, tool = cmds[name]
                order = ["labdeck", "direct"] if (k + targets.index(name)) % 2 == 0 \
                    else ["direct", "labdeck"]
                pair: dict[str, Sample] = {}
                for who in order:
                    before = set(runs_dir.iterdir()) if runs_dir.is_dir() else set()
                    pair[who] = (run(tool, root, tool_env) if who == "labdeck"
                                 else run(direct, root, direct_env))
                    s = pair[who]
                    if who == "labdeck" and opts.trace and k >= warmup:
                        new = sorted(set(runs_dir.iterdir()) - before)
                        if new:
                            traced[name].append(phases(new[-1], s))
                    tag = "warm-up" if k < warmup else f"pair {k - warmup + 1}"
                    print(f"{tag:8s} {name:17s} {who:8s} wall {s.wall:6.2f} s  cpu "
                          f"{s.cpu:6.2f} s  first line {s.first:6.2f} s  tree +{s.tree:4.2f} s"
                          f"  load {s.load:4.1f}", flush=True)
                if k >= warmup:
                    got[name].append((pair["labdeck"], pair["direct"]))
                    t, d = pair["labdeck"], pair["direct"]
                    print(f"         -> wall {t.wall / d.wall:.3f}x  cpu {t.cpu / d.cpu:.3f}x  "
                          f"first line {t.first - d.first:+.2f} s", flush=True)
        return summary(got, traced, script, pairs, warmup, compiled, opts.bare)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def fmt(values: list[float], unit: str = "x", digits: int = 3) -> str:
    med, q1, q3, lo, hi = spread(values)
    f = f"{{:.{digits}f}}"
    return (f"median {f.format(med)}{unit}, IQR {f.format(q1)}-{f.format(q3)}{unit}, "
            f"range {f.format(lo)}-{f.format(hi)}{unit}")


def summary(got: dict[str, list[tuple[Sample, Sample]]], traced: dict[str, list[dict[str, float]]],
            script: list[str], pairs: int, warmup: int, compiled: bool, is_bare: bool) -> int:
    base = "plain spark-submit (--bare)" if is_bare else "labdeck's spark-submit line run directly"
    print(f"\n{' '.join(script)}: {pairs} pairs per target after {warmup} warm-up pair(s), "
          f"baseline: {base}{', byte-compiled' if compiled else ''}; {os.cpu_count()} CPUs")
    ok = True
    rows = []
    for name, got_pairs in got.items():
        if not got_pairs:
            continue
        wall = [t.wall / d.wall for t, d in got_pairs]
        cpu = [t.cpu / d.cpu for t, d in got_pairs]
        dfirst = [t.first - d.first for t, d in got_pairs]
        loads = [x.load for pair in got_pairs for x in pair]
        med = {who: {key: statistics.median(getattr(p[i], key) for p in got_pairs)
                     for key in ("wall", "cpu", "first", "tree")}
               for i, who in enumerate(("labdeck", "direct"))}
        tm, dm = med["labdeck"], med["direct"]
        w, c = spread(wall), spread(cpu)
        ok = ok and w[0] <= GOAL
        verdict = ("met" if w[2] <= GOAL else "median met, Q3 above the line") if w[0] <= GOAL \
            else "NOT met"
        lo, hi = min(loads), max(loads)
        print(f"{name}: load {statistics.median(loads):.1f} ({lo:.1f}-{hi:.1f})")
        print(f"  wall  direct {dm['wall']:6.2f} s, labdeck {tm['wall']:6.2f}"
              f" s; per-pair ratio {fmt(wall)} -> {verdict}")
        print(f"  CPU   direct {dm['cpu']:6.2f} s, labdeck {tm['cpu']:6.2f}"
              f" s; per-pair ratio {fmt(cpu)}")
        print(f"  first driver line  direct {dm['first']:5.2f} s, labdeck "
              f"{tm['first']:5.2f} s; per-pair difference {fmt(dfirst, ' s', 2)}")
        print(f"  tree after exit  direct +{dm['tree']:.2f} s, labdeck "
              f"+{tm['tree']:.2f} s (descendants still running when it returned)")
        if traced.get(name):
            print_phases(traced[name], [d for _, d in got_pairs])
        rows.append(
            f"| `bench_spark.py` {name}, {' '.join(script)} ({time.strftime('%Y-%m-%d')}, "
            f"{len(got_pairs)} pairs, load {lo:.1f}-{hi:.1f}) | {tm['wall']:.2f} s "
            f"wall, {tm['cpu']:.2f} s CPU, first line {tm['first']:.2f} s | "
            f"{dm['wall']:.2f} s wall, {dm['cpu']:.2f} s CPU, first line "
            f"{dm['first']:.2f} s | wall {w[0]:.3f}x (IQR {w[1]:.3f}-{w[2]:.3f}, "
            f"{w[3]:.2f}-{w[4]:.2f}); CPU {c[0]:.3f}x (IQR {c[1]:.3f}-{c[2]:.3f}); "
            f"first line {spread(dfirst)[0]:+.2f} s | <= 1.05x: {verdict} |")
    print("\nREADME rows:")
    for row in rows:
        print(row)
    print(f"goal: labdeck <= {GOAL:.2f}x the direct run's wall time (per-pair median): "
          f"{'met' if ok else 'NOT met'}")
    return 0 if ok else 1


def print_phases(marks: list[dict[str, float]], direct: list[Sample]) -> None:
    """Median seconds from the command's start to labdeck's marks, and what they split."""
    keys = sorted({k for m in marks for k in m}, key=lambda k: statistics.median(
        m[k] for m in marks if k in m))
    print("  labdeck's marks (median s from the command's start, LABDECK_TRACE=1):")
    for key in [k for k in keys if not k.endswith(" cpu")]:
        print(f"    {statistics.median(m[key] for m in marks if key in m):7.3f}  {key}")
    need = ("sup sup-started", "sup sup-script-exited", "cli cli-exit")
    full = [m for m in marks if all(k in m for k in need)]
    if full:
        before = statistics.median(m["sup sup-started"] for m in full)
        during = statistics.median(m["sup sup-script-exited"] - m["sup sup-started"]
                                   for m in full)
        after = statistics.median(m["cli cli-exit"] - m["sup sup-script-exited"] for m in full)
        print(f"  split: before spark-submit {before:.3f} s, spark-submit under labdeck "
              f"{during:.2f} s (direct: {statistics.median(d.wall for d in direct):.2f} s), after "
              f"its exit {after:.3f} s")
    cpu = [m for m in marks if "supervisor cpu" in m]
    if cpu:  # the CLI (and what it waited for), the supervisor, and the rest: spark-submit's tree
        cli = statistics.median(m["cli cpu"] for m in cpu)
        sup = statistics.median(m["supervisor cpu"] for m in cpu)
        rest = statistics.median(m["tree cpu"] - m["cli cpu"] - m["supervisor cpu"] for m in cpu)
        print(f"  CPU split: labdeck CLI {cli:.2f} s, supervisor {sup:.2f} s, spark-submit's tree "
              f"under labdeck {rest:.2f} s (direct: {statistics.median(d.cpu for d in direct):.2f}"
              " s)")


if __name__ == "__main__":
    sys.exit(main())
