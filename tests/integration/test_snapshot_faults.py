"""Content-addressed snapshots under faults, through the real CLI and real local runs: a name that
is not UTF-8, a damaged object or manifest (one line, never a traceback, never other content), and
``runs checkout`` into the run's own folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from backends import objects
from tests.conftest import Project, Result, need


def submit(project: Project, *args: str) -> str:
    return project.cli("submit", *args, check=True).stdout.splitlines()[0].strip()


def runs_dir(project: Project) -> Path:
    return project.root / ".labdeck" / "runs"


def one_line_error(res: Result) -> str:
    rc, err = res.returncode, res.stderr
    assert rc != 0 and "Traceback" not in err and "internal error" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_a_file_name_that_is_not_utf8(project: Project) -> None:
    project.write("train.py", "import os; print(sorted(os.listdir(b'.')))\n")
    name = os.fsdecode(b"donn\xe9es.txt")
    (project.root / name).write_bytes(b"one\n")
    first = submit(project, "train.py")  # was: internal error, UnicodeEncodeError
    (project.root / name).write_bytes(b"two\n")
    out = project.cli("submit", "train.py", check=True).stdout
    assert "donn\\xe9es.txt" in out  # the script sees the very bytes
    second = out.splitlines()[0].strip()
    diff = project.cli("runs", "diff", first, second, check=True)
    assert "M donn\\xe9es.txt" in diff.stdout and "-one" in diff.stdout
    assert project.cli("runs", "checkout", first, str(project.root.parent / "co"),
                       check=True).returncode == 0
    assert (project.root.parent / "co" / name).read_bytes() == b"one\n"


def test_a_damaged_object_is_an_error_never_other_content(project: Project) -> None:
    project.write("train.py", "print(open('v.txt').read())\n")
    project.write("v.txt", "as submitted\n")
    rid = submit(project, "train.py")
    entry = objects.Manifest.load(runs_dir(project) / rid).by_path()["v.txt"]
    obj = objects.ObjectStore(project.root / ".labdeck").path(entry.sha256)
    project.write("v.txt", "changed since\n")  # the project no longer holds that content
    os.chmod(obj, 0o644)
    obj.write_bytes(b"X" * entry.size)  # same size, other bytes
    line = one_line_error(project.cli("runs", "rerun", rid))  # was: ran with "XXXX..."
    assert "does not hash to its name" in line and "v.txt" in line
    line = one_line_error(project.cli("runs", "checkout", rid, str(project.root.parent / "c")))
    assert "does not hash" in line
    line = one_line_error(project.cli("runs", "export", rid, "--with-objects", "-o",
                                      str(project.root.parent)))
    assert "damaged" in line
    assert not list(project.root.parent.glob("*.tar.gz*"))
    verify = project.cli("store", "--verify", check=True)
    assert f"removed 1 damaged object(s), used by 1 run(s): {rid}" in verify.stderr
    assert not obj.exists()
    assert "missing" in one_line_error(project.cli("runs", "rerun", rid))
    # The current files still run (their content is stored afresh).
    assert "changed since" in project.cli("runs", "rerun", rid, "--current", check=True).stdout


def test_a_damaged_manifest_stops_gc_and_prune_in_one_line(project: Project) -> None:
    project.write("train.py", "print('ok')\n")
    project.write("own.txt", "first run's own content\n")
    damaged = submit(project, "train.py")
    project.write("own.txt", "second run's own content\n")
    keep = submit(project, "train.py")
    manifest = runs_dir(project) / damaged / objects.MANIFEST
    owned = objects.Manifest.load(runs_dir(project) / damaged).by_path()["own.txt"].sha256
    manifest.write_text(manifest.read_text()[:40])  # half-written
    store = objects.ObjectStore(project.root / ".labdeck")
    line = one_line_error(project.cli("store", "--gc"))
    assert damaged in line and "nothing collected" in line
    assert store.has(owned)  # was: removed as unreferenced
    line = one_line_error(project.cli("runs", "delete", keep))
    assert damaged in line and (runs_dir(project) / keep).is_dir()
    # The damaged run itself can go, and then collection works again.
    project.cli("runs", "delete", damaged, check=True)
    project.cli("store", "--gc", check=True)
    assert not store.has(owned)


def test_checkout_into_the_runs_own_folder(project: Project) -> None:
    project.write("train.py", "print('ok')\n")
    project.write("v.txt", "one\n")
    rid = submit(project, "train.py")
    last = submit(project, "train.py")
    state = project.root / ".labdeck"
    deadline = time.monotonic() + 60  # a hang guard: the supervisors drop their copies at the end
    while ({rid, last} & set(objects.materialised_runs(state))) and time.monotonic() < deadline:
        time.sleep(0.05)
    folder = runs_dir(project) / rid / "snapshot"
    assert not folder.exists()  # dropped by its supervisor once it ended (or by the next submit)
    project.cli("runs", "checkout", rid, check=True)
    assert (folder / "v.txt").read_text() == "one\n"
    line = one_line_error(project.cli("runs", "checkout", rid))  # never written over
    assert "not empty" in line
    dry = project.cli("store", "--gc", "--dry-run", check=True).stderr
    assert "would drop 1 materialised" in dry and folder.exists()  # was: "dropped 0"
    project.cli("store", "--gc", check=True)
    assert not folder.exists()  # was: kept for good (an ended run's copy was never marked)


def test_gc_removes_what_a_killed_submit_left(project: Project) -> None:
    """A submit killed (SIGKILL, power cut) after materialising, before its run.json and
    record: the half-made folder goes with ``store --gc``; one with run.json (a submit about to
    record its run) stays."""
    project.write("train.py", "print('ok')\n")
    rid = submit(project, "train.py")
    state = project.root / ".labdeck"
    for name, spec in (("proj_1", False), ("proj_2", True)):
        half = runs_dir(project) / name
        (half / "snapshot").mkdir(parents=True)  # the copy it made (the run's own went at its end)
        shutil.copy2(project.root / "train.py", half / "snapshot" / "train.py")
        shutil.copy2(runs_dir(project) / rid / objects.MANIFEST, half / objects.MANIFEST)
        if spec:
            shutil.copy2(runs_dir(project) / rid / "run.json", half / "run.json")
        objects.mark_materialised(state, name)
    project.cli("store", "--gc", check=True)
    assert not (runs_dir(project) / "proj_1").exists()  # was: kept for good
    assert (runs_dir(project) / "proj_2" / "run.json").is_file()
    assert "proj_1" not in objects.materialised_runs(state)


def du_s(path: Path) -> int:
    """``du -s``: blocks of path and of every inode under it, each once."""
    total, seen = os.lstat(path).st_blocks * 512, set()
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            st = os.lstat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def test_the_store_total_is_all_of_labdeck(project: Project) -> None:
    project.write("train.py", "import os; os.makedirs('outputs/m', exist_ok=True);"
                  " open('outputs/m/w.bin', 'wb').write(b'w' * 100000)\n")
    project.write("data.bin", "d" * 300_000)
    for _ in range(3):
        submit(project, "train.py")
    state = project.root / ".labdeck"
    shown = json.loads(project.cli("store", "-o", "json", check=True).stdout)
    # Was: the run database, stamps and caches left out, run folders' own blocks missed and
    # their subfolders' counted twice. (The database's WAL and shared-memory files change as
    # the command's own connection opens and closes: counted apart.)
    database = sum(p.stat().st_blocks * 512 for p in state.glob("runs.db*"))
    assert shown["total_bytes"] - shown["database_bytes"] == du_s(state) - database
    assert shown["database_bytes"] >= (state / "runs.db").stat().st_blocks * 512 > 0
    du = json.loads(project.cli("runs", "du", "-o", "json", check=True).stdout)
    assert sum(r["folder"] for r in du) == sum(du_s(d) for d in runs_dir(project).iterdir())


def test_a_full_disk_while_storing_objects_records_nothing(project: Project) -> None:
    """The object store on a 64 KiB filesystem: the submit fails in one line naming it, leaves
    no record, no run folder and no half-written object; with room again it runs."""
    objects_dir = project.root / ".labdeck" / "objects"
    objects_dir.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs",
                              str(objects_dir)], capture_output=True).returncode == 0
    need(mounted, "mounting a small tmpfs needs root (CAP_SYS_ADMIN)")
    try:
        project.write("train.py", "print(len(open('data.bin', 'rb').read()))\n")
        (project.root / "data.bin").write_bytes(os.urandom(300_000))
        line = one_line_error(project.cli("submit", "train.py"))
        assert "No space left on device" in line and str(objects_dir) in line
        assert not runs_dir(project).exists() or list(runs_dir(project).iterdir()) == []
        assert project.cli("runs", "list", "-o", "json", check=True).stdout.strip() == "[]"
        leftovers = [p.name for p in objects_dir.rglob("*") if p.is_file()]
        assert not [n for n in leftovers if n.startswith("tmp-")], leftovers
        # Whatever objects made it are whole (named by their content).
        store = objects.ObjectStore(project.root / ".labdeck")
        assert store.verify() == []
    finally:
        subprocess.run(["umount", "-l", str(objects_dir)], check=False)
    assert "300000" in project.cli("submit", "train.py", check=True).stdout


def test_shared_volumes_runs_have_no_copy_and_nothing_of_the_project_is_dropped(
        project: Project) -> None:
    project.write("aml_config/shared.compute", 'type: "local"\nsharedVolumes: true\n')
    project.write("train.py", "import os; open('made.txt', 'w').write('x'); print(os.getcwd())\n")
    rid = submit(project, "-c", "shared", "train.py")
    submit(project, "-c", "shared", "train.py")
    assert not (runs_dir(project) / rid / objects.MANIFEST).exists()
    assert not (runs_dir(project) / rid / "snapshot").exists()
    assert objects.materialised_runs(project.root / ".labdeck") == []
    project.cli("store", "--gc", check=True)
    assert (project.root / "made.txt").is_file() and (project.root / "train.py").is_file()
    line = one_line_error(project.cli("runs", "rerun", rid))
    assert "sharedVolumes" in line and "--current" in line  # was: no way forward said
    again = project.cli("runs", "rerun", rid, "--current", check=True)
    assert str(project.root) in again.stdout
