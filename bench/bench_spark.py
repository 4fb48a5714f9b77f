"""`labdeck submit` of iris_spark.py 0.1 against the same spark-submit run directly, side by side,
on local Spark (spark-local) and on the standalone cluster in client mode (spark-standalone, the
rig of scripts/start-spark.sh): the whole run's wall time, and the time from the command's start
to the driver's first line ("Spark version: ..."), each a median over alternating rounds.

Goal (issue 9): labdeck's overhead at most 5% of the run. The direct line is labdeck's own
(backends/spark/submit.py: same --conf, same PYSPARK_PYTHON, labdeck's shim on PYTHONPATH for
azureml.logging), so the difference is what labdeck adds: snapshot, record, supervisor, log.
Usage: python bench/bench_spark.py [ROUNDS] [--small]   (a round is 4 Spark runs: ~2 min on 2
cores; --small: a minimal app instead of iris, a SparkSession, one count and its stop)
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, byte_compile, labdeck_cli

sys.path.insert(0, str(REPO))

from backends.metrics import SHIM_DIR
from backends.project import Project
from backends.spark.submit import spark_env, submit_command

FIRST = b"Spark version:"
SMALL = """\
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
print("Spark version:", spark.version, flush=True)
print("rows", spark.range(1000).count())
spark.stop()
"""
GOAL = 1.05


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, seconds to the first driver line) of one command, output read live."""
    start = time.perf_counter()
    first = float("nan")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    tail = []
    for line in proc.stdout:
        if first != first and FIRST in line:  # nan: not seen yet
            first = time.perf_counter() - start
        tail = [*tail, line][-20:]
    code = proc.wait()
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"failed ({code}): {' '.join(cmd)}\n" + b"".join(tail).decode())
    return wall, first


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    rounds = int(args[0]) if args else 3
    script = ["small_app.py"] if "--small" in sys.argv else ["iris_spark.py", "0.1"]
    facts_file = REPO / ".labdeck-rigs" / "spark.json"
    if not facts_file.is_file():
        raise SystemExit("the Spark rig is not up: bash scripts/start-spark.sh")
    facts = json.loads(facts_file.read_text())
    byte_compile()
    root = Path(tempfile.mkdtemp(prefix="labdeck-bench-spark-"))
    try:
        shutil.copytree(REPO / "sample_project", root, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".labdeck", "outputs", "__pycache__"))
        (root / "small_app.py").write_text(SMALL)
        env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1")
        direct_env = dict(env, **spark_env(sys.executable),
                          PYTHONPATH=os.pathsep.join(p for p in (str(SHIM_DIR),
                                                                 env.get("PYTHONPATH")) if p))
        targets = {"spark-local": "local[*]", "spark-standalone": facts["master_url"]}
        cmds: dict[str, tuple[list[str], list[str]]] = {}
        for name, master in targets.items():
            deps = Project(root).resolve(name).spark
            direct = submit_command(facts["spark_submit"], master, "bench-direct", script, deps)
            cmds[name] = (direct, [labdeck_cli(), "submit", "-c", name, *script])
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for r in range(rounds):
            for name, (direct, tool) in cmds.items():
                order = [("spark-submit", direct), ("labdeck", tool)]
                if r % 2:
                    order.reverse()  # alternate who goes first: load drifts
                for who, cmd in order:
                    times.setdefault((name, who), []).append(run(cmd, root, direct_env
                                                                 if who == "spark-submit"
                                                                 else env))
                    wall, first = times[(name, who)][-1]
                    print(f"round {r + 1} {name:17s} {who:12s} wall {wall:6.2f} s  first "
                          f"driver line {first:6.2f} s", flush=True)
        print(f"\nmedians over {rounds} alternating rounds ({' '.join(script)}; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end):")
        ok = True
        for name in cmds:
            base = times[(name, "spark-submit")]
            tool = times[(name, "labdeck")]
            bw, tw = (statistics.median(t[0] for t in x) for x in (base, tool))
            bf, tf = (statistics.median(t[1] for t in x) for x in (base, tool))
            ratio = tw / bw
            ok = ok and ratio <= GOAL
            print(f"  {name:17s} wall: spark-submit {bw:6.2f} s, labdeck {tw:6.2f} s -> "
                  f"{ratio:.3f}x ({(ratio - 1) * 100:+.1f}%); first driver line: "
                  f"{bf:5.2f} s vs {tf:5.2f} s ({tf - bf:+.2f} s)")
        print(f"goal: labdeck <= {GOAL:.2f}x spark-submit's wall time: "
              f"{'met' if ok else 'NOT met'}")
        return 0 if ok else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
