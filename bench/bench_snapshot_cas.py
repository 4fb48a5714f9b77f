"""The submit's snapshot step, the full copy (before issue 12) against content-addressed
snapshots, side by side in one loop; then twenty CLI submits of an unchanged project and the
bytes they add.

copy:  snapshot.content_hash (reads every file) + snapshot.copy_files into the run folder
cas:   objects.snapshot (stamp cache, objects written once) + objects.materialise + manifest
many:  `submit -a` of the same project with 1,000 ended runs (manifests, records) in the store
       against one with none, alternating: a submit's clean-up must not read every run's manifest
Usage: python bench/bench_snapshot_cas.py [ROUNDS] [--big-mb N] [--submits N] [--many N]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import labdeck_cli, ms, report

from backends import objects, snapshot


def du(path: Path) -> int:
    total, seen = 0, set()
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            st = os.lstat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def make_project(root: Path, big_mb: int) -> None:
    (root / "aml_config").mkdir(parents=True)
    (root / "aml_config" / "local.compute").write_text('type: "local"\n')
    (root / "train.py").write_text("print('ok')\n")
    for i in range(20):  # the sample's size: a few small sources
        (root / f"mod{i}.py").write_text(f"X = {i}\n" * 50)
    if big_mb:
        data = root / "data"
        data.mkdir()
        for i in range(big_mb):
            (data / f"part{i:03d}.bin").write_bytes(os.urandom(1024 * 1024))
    old = time.time() - 60
    for path in root.rglob("*"):
        os.utime(path, (old, old))
    time.sleep(objects.STAMP_SETTLE_NS / 1e9 + 0.1)  # changes settled (ctime too): stamps kept


def step_side_by_side(root: Path, rounds: int) -> tuple[list[float], list[float]]:
    state = root / ".labdeck"
    state.mkdir(exist_ok=True)
    copy_t: list[float] = []
    cas_t: list[float] = []
    for i in range(rounds):
        files = snapshot.list_files(root)
        dest = state / f"copy-{i}"
        t0 = time.perf_counter()
        snapshot.content_hash(root, files)
        snapshot.copy_files(root, files, dest / "snapshot")
        copy_t.append(time.perf_counter() - t0)
        shutil.rmtree(dest)
        dest = state / f"cas-{i}"
        dest.mkdir()
        t0 = time.perf_counter()
        with objects.ObjectStore(state).lock():
            manifest = objects.snapshot(root, files, state)
            objects.materialise(manifest, state, dest / "snapshot")
            manifest.save(dest)
        cas_t.append(time.perf_counter() - t0)
        shutil.rmtree(dest)
    return copy_t, cas_t


def submits(root: Path, count: int) -> list[str]:
    cli = labdeck_cli()
    state = root / ".labdeck"
    env = dict(os.environ, LABDECK_SNAPSHOT_LIMIT_MB="1000")  # over Workbench's 25 MB cap
    subprocess.run([cli, "submit", "-c", "local", "train.py"], cwd=root, check=True,
                   capture_output=True, env=env)
    before = du(state / "objects") + du(state / "runs")
    for _ in range(count - 1):
        subprocess.run([cli, "submit", "-c", "local", "train.py"], cwd=root, check=True,
                       capture_output=True, env=env)
    after = du(state / "objects") + du(state / "runs")
    project = du(root) - du(state)
    return [f"project {project / 2**20:.1f} MB; after the 1st submit objects+runs"
            f" {before / 2**20:.1f} MB; after {count} submits {after / 2**20:.1f} MB:"
            f" +{(after - before) / 1024:.0f} KB for {count - 1} runs"
            f" ({(after - before) / project * 100:.2f}% of one copy; full copies:"
            f" +{(count - 1) * project / 2**20:.0f} MB)"]


def with_ended_runs(root: Path, count: int) -> None:
    """``count`` ended runs as a submit leaves them (run folder with manifest, run.json, log;
    a completed record), made from one real run."""
    from backends.engine import Engine
    from backends.project import Project
    from backends.status import RunStatus

    cli = labdeck_cli()
    subprocess.run([cli, "submit", "-c", "local", "train.py"], cwd=root, check=True,
                   capture_output=True)
    engine = Engine(Project(root))
    try:
        first = engine.runs(limit=1, with_metrics=False)[0]
        src = engine.project.run_dir(first.id)
        for i in range(count):
            run_id = f"{engine.project.name}_{1_000_000 + i}"
            dest = engine.project.run_dir(run_id)
            dest.mkdir()
            for name in ("snapshot.json", "run.json", "log"):
                shutil.copy2(src / name, dest / name)
            engine.store.create(engine.project.name, first.target, first.target_type,
                                runconfig=None, script=first.script, args=[], env={}, run_id=run_id,
                                created=first.created - 1 - i, snapshot=first.snapshot)
            engine.store.set_status(run_id, RunStatus.COMPLETED, exit_code=0)
    finally:
        engine.close()


def many_runs(rounds: int, count: int) -> list[str]:
    cli = labdeck_cli()
    roots = {}
    for label, n in (("none", 0), ("many", count)):
        root = Path(tempfile.mkdtemp(prefix=f"labdeck-bench-many-{label}-"))
        make_project(root, 0)
        with_ended_runs(root, n)
        roots[label] = root
    times: dict[str, list[float]] = {"none": [], "many": []}
    try:
        for _ in range(rounds):
            for label, root in roots.items():
                t0 = time.perf_counter()
                subprocess.run([cli, "submit", "-a", "-c", "local", "train.py"], cwd=root,
                               check=True, capture_output=True)
                times[label].append(time.perf_counter() - t0)
    finally:
        for root in roots.values():
            shutil.rmtree(root, ignore_errors=True)
    none, many = statistics.median(times["none"]), statistics.median(times["many"])
    return [f"submit -a, {count} ended runs in the store: median {ms(many)} against"
            f" {ms(none)} with none; ratio {many / none:.2f}x"]


def main() -> int:
    args = sys.argv[1:]
    rounds = int(args[0]) if args and args[0].isdigit() else 30
    big = int(args[args.index("--big-mb") + 1]) if "--big-mb" in args else 50
    count = int(args[args.index("--submits") + 1]) if "--submits" in args else 20
    many = int(args[args.index("--many") + 1]) if "--many" in args else 1000
    lines = [f"rounds: {rounds} each, alternating in one process"]
    for label, mb in (("small project (21 files)", 0), (f"{big} MB project", big)):
        root = Path(tempfile.mkdtemp(prefix="labdeck-bench-cas-"))
        try:
            make_project(root, mb)
            copy_t, cas_t = step_side_by_side(root, rounds)
            ratio = statistics.median(cas_t) / statistics.median(copy_t)
            lines.append(f"{label}: copy median {ms(statistics.median(copy_t))}, cas median"
                         f" {ms(statistics.median(cas_t))}; ratio cas/copy {ratio:.2f}x")
            if mb:
                shutil.rmtree(root / ".labdeck")
                lines += submits(root, count)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    lines += many_runs(max(15, rounds), many)  # short submits: more rounds against noise
    report("snapshot step: full copy vs content-addressed", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
