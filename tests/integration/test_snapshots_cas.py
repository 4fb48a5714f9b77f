"""Content-addressed snapshots (issue 12, item 1), through the real CLI and real local runs:
content stored once by hash, manifests in run folders, a real folder materialised for the run
and dropped once it ended, the store's size shown, prune freeing what it promised and never a
running run's content, reindex and old full-copy runs still working."""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path

from backends import objects
from backends.engine import Engine
from backends.history import delete, select_prune
from backends.project import Project as EngineProject
from backends.query import RunFilter
from tests.conftest import Project

MUTATE = """
    import os, sys
    print(open("data/shared.txt").read().strip())
    open("data/shared.txt", "w").write("overwritten by the run")  # a script may do this
    os.chmod("train.py", 0o600)
    print("reads back:", open("data/shared.txt").read())
"""


def disk(path: Path) -> int:
    """Bytes on disk under path (blocks, each inode once), as du counts them."""
    total, seen = 0, set()
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:  # an ended run's copy, dropped by its supervisor meanwhile
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def submit(project: Project, *args: str) -> str:
    return project.cli("submit", *args, check=True).stdout.splitlines()[0].strip()


def state(project: Project) -> Path:
    return project.root / ".labdeck"


def wait_dropped(project: Project, run_id: str) -> None:
    """Until the run's supervisor, which goes on a moment after its client, dropped its copy."""
    folder = state(project) / "runs" / run_id / "snapshot"
    deadline = time.monotonic() + 60  # a hang guard, not a speed bound
    while folder.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_unchanged_project_twenty_times_adds_almost_nothing(project: Project) -> None:
    project.write("train.py", "print('ok')\n")
    (project.root / "data").mkdir()
    for i in range(4):
        (project.root / "data" / f"blob{i}.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    size = 8 * 1024 * 1024
    old = time.time() - 60  # settled files: their stamps are kept
    for path in (project.root / "data").iterdir():
        os.utime(path, (old, old))
    last = max(p.stat().st_ctime_ns for p in (project.root / "data").iterdir())
    while time.time_ns() - last <= objects.STAMP_SETTLE_NS + 50_000_000:  # ctime settles too
        time.sleep(0.05)
    first = submit(project, "train.py")
    wait_dropped(project, first)
    before = disk(state(project) / "objects") + disk(state(project) / "runs")
    assert disk(state(project) / "objects") >= size
    ids = [submit(project, "train.py") for _ in range(19)]
    wait_dropped(project, ids[-1])
    after = disk(state(project) / "objects") + disk(state(project) / "runs")
    # Twenty copies would be 160 MB; manifests and logs are a sliver of one.
    assert after - before < size // 4, (before, after)
    manifests = [objects.Manifest.load(state(project) / "runs" / rid) for rid in [first, *ids]]
    assert len({m.digest for m in manifests}) == 1
    # Ended runs keep no copy: their supervisor drops it (else the next submit or `store --gc`).
    assert not (state(project) / "runs" / first / "snapshot").exists()
    stamps = json.loads((state(project) / "stamps.json").read_text())
    assert {f"data/blob{i}.bin" for i in range(4)} <= set(stamps)
    shown = json.loads(project.cli("store", "-o", "json", check=True).stdout)
    assert shown["runs"] == 20 and shown["unreferenced"] == 0
    assert shown["logical_snapshot_bytes"] >= 20 * size
    assert size <= shown["objects_bytes"] < size + 64 * 1024
    du = json.loads(project.cli("runs", "du", ids[-1], first, "-o", "json", check=True).stdout)
    assert [r["run"] for r in du] == sorted([ids[-1], first])
    assert all(r["unique"] == 0 and r["shared"] >= size for r in du)
    # The stamp cache still sees a same-size rewrite whose mtime was put back (ctime tells).
    project.write("train.py", "print(open('data/w.txt').read())\n")
    path = project.write("data/w.txt", "AAAA")
    os.utime(path, (old, old))
    assert "AAAA" in project.cli("submit", "train.py", check=True).stdout
    path.write_text("BBBB")
    os.utime(path, (old, old))
    assert "BBBB" in project.cli("submit", "train.py", check=True).stdout


def test_the_run_gets_a_real_copy_and_cannot_harm_the_store(project: Project) -> None:
    project.write("train.py", MUTATE)
    project.write("data/shared.txt", "original\n")
    os.chmod(project.root / "train.py", 0o755)
    first = submit(project, "train.py")
    out = project.cli("submit", "train.py", check=True).stdout
    assert "original" in out  # the second run saw the content, not what the first wrote
    second = out.splitlines()[0].strip()
    run_dir = state(project) / "runs" / second
    manifest = objects.Manifest.load(run_dir)
    entry = manifest.by_path()["data/shared.txt"]
    obj = objects.ObjectStore(state(project)).path(entry.sha256)
    assert obj.read_text() == "original\n"
    assert stat.S_IMODE(obj.stat().st_mode) == 0o444
    assert manifest.by_path()["train.py"].mode == 0o755
    # The run's copy was its own (the script rewrote it there), not the store's object; ended
    # runs keep no copy (their supervisor drops it).
    assert "reads back: overwritten by the run" in out
    wait_dropped(project, first)
    assert not (state(project) / "runs" / first / "snapshot").exists()
    # Materialised again on demand: exactly the files, modes and mtimes submitted.
    engine = Engine(EngineProject(project.root))
    try:
        dest = engine.materialise(first, project.root.parent / "again")
    finally:
        engine.close()
    for e in manifest.files:
        st = (dest / e.path).stat()
        assert (dest / e.path).read_bytes() == (project.root / e.path).read_bytes()
        assert stat.S_IMODE(st.st_mode) == e.mode and st.st_mtime_ns == e.mtime_ns
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == sorted(
        e.path for e in manifest.files)


def _prunable(project: Project, count: int) -> list[str]:
    project.write("train.py", "print('ok')\n")
    project.write("common.bin", "c" * 500_000)
    ids = []
    for i in range(count):
        (project.root / "own.bin").write_bytes(os.urandom(300_000 + i))
        ids.append(submit(project, "train.py"))
    return ids


def test_prune_keep_last_frees_what_it_promised(project: Project) -> None:
    ids = _prunable(project, 8)
    project.cli("store", "--gc", check=True)  # the last run's live copy too: du is steady
    measured = state(project) / "objects", state(project) / "runs"
    before = sum(disk(p) for p in measured)
    dry = project.cli("runs", "prune", "--keep-last", "5", "--dry-run", check=True)
    promised = dry.stderr.strip().splitlines()[-1]
    assert promised.startswith("would delete 3 run(s), freeing ")
    # Each pruned run's own 300 KB object goes with it; the shared one stays.
    assert float(promised.split()[-2]) * 1024 ** (promised.endswith("MB") + 1) > 3 * 300_000
    done = project.cli("runs", "prune", "--keep-last", "5", check=True)
    assert done.stderr.strip().splitlines()[-1] == promised.replace(
        "would delete", "deleted").replace("freeing", "freed")
    after = sum(disk(p) for p in measured)
    # What it said it freed, to the byte, on the engine's side (the CLI rounds).
    ids2 = _prunable(project, 4)
    project.cli("store", "--gc", check=True)
    engine = Engine(EngineProject(project.root))
    try:
        before2 = sum(disk(p) for p in measured)
        doomed = select_prune(engine.store, engine.project.runs_dir, RunFilter(), keep_last=5)
        assert [d.record.id for d in doomed] == ids[3:7][::-1]
        _, freed = delete(engine.store, engine.project.runs_dir, doomed)
        assert freed == sum(d.size for d in doomed) == before2 - sum(disk(p) for p in measured)
    finally:
        engine.close()
    assert before - after > 3 * 300_000
    common = objects.Manifest.load(state(project) / "runs" / ids2[-1]).by_path()["common.bin"]
    assert objects.ObjectStore(state(project)).has(common.sha256)
    assert not any((state(project) / "runs" / rid).exists() for rid in ids[:3])


def test_prune_never_removes_a_running_runs_content(project: Project) -> None:
    ids = _prunable(project, 3)
    project.write("wait.py", """
        import os, time
        while not os.path.exists(os.environ["GO"]):
            time.sleep(0.05)
        print(open("own.bin", "rb").read()[:4].hex(), open("common.bin").read()[:3])
    """)
    go = project.root.parent / "go"
    live = project.popen("submit", "wait.py", env={"GO": str(go)})
    try:
        live_id = live.stdout.readline().strip() if live.stdout else ""
        live_dir = state(project) / "runs" / live_id
        manifest = objects.Manifest.load(live_dir)
        # The live run's content is the last pruned run's too (same own.bin): it must stay.
        assert manifest.by_path()["own.bin"].sha256 == objects.Manifest.load(
            state(project) / "runs" / ids[-1]).by_path()["own.bin"].sha256
        project.cli("runs", "prune", "--keep-last", "0", check=True)
        project.cli("store", "--gc", check=True)
        store = objects.ObjectStore(state(project))
        assert all(store.has(e.sha256) for e in manifest.files)
        assert (live_dir / "snapshot" / "own.bin").is_file()
        go.write_text("")
        out, err = live.communicate(timeout=60)
        assert live.returncode == 0, err
        assert "ccc" in out
    finally:
        if live.poll() is None:
            live.kill()


def test_reindex_and_old_full_copy_runs(project: Project) -> None:
    project.write("train.py", "print('ok')\n")
    new = submit(project, "train.py")
    old = submit(project, "train.py")
    digest = json.loads(project.cli("runs", "show", new, "-o", "json", check=True).stdout)[
        "snapshot"]
    # An old run (before manifests): a full snapshot folder, no manifest.
    old_dir = state(project) / "runs" / old
    (old_dir / "snapshot.json").unlink()
    shutil.rmtree(old_dir / "snapshot", ignore_errors=True)
    (old_dir / "snapshot").mkdir()
    shutil.copy2(project.root / "train.py", old_dir / "snapshot" / "train.py")
    (state(project) / "runs.db").unlink()
    for suffix in ("-wal", "-shm"):
        Path(f"{state(project) / 'runs.db'}{suffix}").unlink(missing_ok=True)
    project.cli("runs", "reindex", check=True)
    shown = json.loads(project.cli("runs", "show", new, "-o", "json", check=True).stdout)
    assert shown["snapshot"] == digest and shown["status"] == "completed"
    du = {r["run"]: r for r in json.loads(
        project.cli("runs", "du", "-o", "json", check=True).stdout)}
    assert du[old]["manifest"] is False and du[old]["materialised"] > 0
    assert du[new]["manifest"] is True
    # The old copy stays through gc, and deleting it frees its folder.
    project.cli("store", "--gc", check=True)
    assert (old_dir / "snapshot" / "train.py").is_file()
    project.cli("runs", "delete", old, check=True)
    assert not old_dir.exists()


def test_store_migrate_turns_old_full_copies_into_manifests(project: Project) -> None:
    project.write("train.py", "print(open('v.txt').read())\n")
    project.write("v.txt", "as submitted\n")
    rid = submit(project, "train.py")
    run_dir = state(project) / "runs" / rid
    (run_dir / "snapshot.json").unlink()  # an old run: its full copy is its snapshot
    shutil.rmtree(run_dir / "snapshot", ignore_errors=True)
    (run_dir / "snapshot").mkdir()
    shutil.copy2(project.root / "train.py", run_dir / "snapshot" / "train.py")
    (run_dir / "snapshot" / "v.txt").write_text("the old copy\n")
    dry = project.cli("store", "--migrate", "--dry-run", check=True)
    assert "would turn 1 full snapshot" in dry.stderr
    assert (run_dir / "snapshot" / "v.txt").is_file() and not (run_dir / "snapshot.json").exists()
    project.cli("store", "--migrate", check=True)
    assert not (run_dir / "snapshot").exists()
    manifest = objects.Manifest.load(run_dir)
    assert sorted(manifest.by_path()) == ["train.py", "v.txt"]
    project.cli("store", "--gc", check=True)  # its content is referenced now: kept
    assert "the old copy" in project.cli("runs", "rerun", rid, check=True).stdout


def test_an_ended_runs_copy_goes_without_another_submit(project: Project) -> None:
    """The supervisor drops its run's copy once the status is final, so that the next submit
    has nothing to remove on its own path (a foreground and a detached submit)."""
    project.write("train.py", "print('ok')\n")
    for args in (("train.py",), ("-a", "train.py")):
        rid = submit(project, *args)
        deadline = time.monotonic() + 60  # a hang guard, not a speed bound
        folder = project.root / ".labdeck" / "runs" / rid / "snapshot"
        while (folder.exists() or not (folder.parent / "snapshot.json").exists()
               or rid in objects.materialised_runs(state(project))) \
                and time.monotonic() < deadline:  # the copy goes, then its mark
            time.sleep(0.05)
        assert not folder.exists() and (folder.parent / "snapshot.json").is_file()
        assert rid not in objects.materialised_runs(state(project))
