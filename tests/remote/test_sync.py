"""The remote sync (backends/ssh/sync.py) against the rig's real sshd and python3, proven by
content read inside the rig (it cannot see this machine's files): a resync sends the tree's
difference and reuses the project's last run folder, files a run touched there are rewritten,
a host whose tree is another gets the whole one, progress lines, the host's cache filled after
the answer, two syncs of one project at once; and the client's stamp cache."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from backends.ssh.connection import SSHEndpoint, connect
from backends.ssh.sync import (
    SYNC_PROGRESS,
    StampCache,
    SyncResult,
    build_manifest,
    manifest_from_snapshot,
    release_remote,
    sync_run,
    tree_folder,
)
from tests.remote.conftest import Client, Rig

pytestmark = pytest.mark.docker
T = TypeVar("T")


@pytest.fixture
def base(rig: Rig, client: Client, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private base folder on the rig (its own cache); this process logs in as the client."""
    monkeypatch.setenv("HOME", str(client.home))
    folder = f"/tmp/ldsync-{uuid.uuid4().hex[:12]}"
    yield folder
    rig.sh(f"rm -rf {folder}")


def endpoint(rig: Rig) -> SSHEndpoint:
    return SSHEndpoint(host=rig.host, port=rig.port, username=rig.user,
                       identity_file=rig.identity_file)


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro
    return asyncio.run(main())


async def sync(rig: Rig, folder: Path, base: str, run_rel: str, state: Path,
               release: bool = True, progress: list[str] | None = None) -> SyncResult:
    conn = await connect(endpoint(rig))
    try:
        manifest = await asyncio.to_thread(build_manifest, [("work", folder)], ["work/outputs"],
                                           state / "stamps.json")
        result = await sync_run(conn, run_rel, manifest, base=base, record=state / "rec.json",
                                progress=progress.append if progress is not None else None)
        if release:
            await release_remote(conn, result.root)
        return result
    finally:
        conn.close()


def local_listing(folder: Path) -> dict[str, str]:
    """rel -> sha256 (files, with an x for executables), -> target (links), dirs as 'd'."""
    out: dict[str, str] = {"outputs": "d"}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            out[rel] = "l:" + os.readlink(path)
        elif path.is_dir():
            out[rel] = "d"
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[rel] = digest + ("x" if os.access(path, os.X_OK) else "")
    return out


LISTING = r"""cd {root}/work && find . -mindepth 1 | sort | while read -r p; do
  r=${{p#./}}
  if [ -L "$p" ]; then echo "$r l:$(readlink "$p")"
  elif [ -d "$p" ]; then echo "$r d"
  else s=$(sha256sum "$p" | cut -c1-64); [ -x "$p" ] && s="${{s}}x"; echo "$r $s"; fi
done"""


def remote_listing(rig: Rig, root: str) -> dict[str, str]:
    res = rig.sh(LISTING.format(root=root), check=True)
    return dict(line.split(" ", 1) for line in res.stdout.splitlines())


def make_tree(folder: Path, count: int) -> None:
    for i in range(count):
        (folder / f"d{i % 7}").mkdir(parents=True, exist_ok=True)
        (folder / f"d{i % 7}" / f"f{i}.txt").write_text(f"file {i} {uuid.uuid4().hex}\n" * 20)
    (folder / "run.sh").write_text("echo hi\n")
    (folder / "run.sh").chmod(0o755)
    (folder / "link").symlink_to("d0/f0.txt")


def test_resync_sends_the_difference_and_reuses_the_projects_last_tree(
        rig: Rig, base: str, tmp_path: Path) -> None:
    folder, state = tmp_path / "p", tmp_path / "state"
    make_tree(folder, 300)
    first = run(sync(rig, folder, base, "proj/r0", state))
    assert first.sent_files == 301 and first.kept_files == 0
    assert rig.sh(f"test -e {first.root}").returncode == 1  # released: it is the tree now
    assert rig.sh(f"test -d {tree_folder(first.root)}/work/d3").returncode == 0

    time.sleep(StampCache.RACY)  # the edits below are not racy with the first hash
    (folder / "d1" / "f1.txt").write_text("changed\n")
    (folder / "d2" / "f2.txt").unlink()
    (folder / "new.txt").write_text(f"new {uuid.uuid4().hex}\n")
    (folder / "d3" / "f3.txt").chmod(0o755)
    (folder / "link").unlink()
    (folder / "link").symlink_to("d4/f4.txt")
    second = run(sync(rig, folder, base, "proj/r1", state, release=False))
    # Only the difference travels: the 300-entry tree's manifest alone was ~25 KB before.
    assert second.bytes_sent < 2_500, second
    assert second.sent_files == 3  # changed, new, and the one now executable
    assert second.kept_files == 298
    assert remote_listing(rig, second.root) == local_listing(folder)


def test_files_a_run_touched_in_the_tree_are_rewritten_and_extras_removed(
        rig: Rig, base: str, tmp_path: Path) -> None:
    folder, state = tmp_path / "p", tmp_path / "state"
    make_tree(folder, 20)
    first = run(sync(rig, folder, base, "proj/r0", state))
    tree = tree_folder(first.root)
    # What a run may leave: a file rewritten in place with its size and mtime put back, a file
    # swapped for a symlink, an output, a folder of its own.
    rig.sh(f"cd {tree}/work && m=$(stat -c %Y d5/f5.txt) && printf XXXX | "
           f"dd of=d5/f5.txt conv=notrunc status=none && touch -d @$m d5/f5.txt && "
           f"rm d6/f6.txt && ln -s /etc/passwd d6/f6.txt && echo out > outputs/model.txt && "
           f"mkdir -p extra/deep && echo x > extra/deep/y && chown -R {rig.user}: outputs extra "
           f"&& chown -h {rig.user}: d6/f6.txt",
           check=True)
    second = run(sync(rig, folder, base, "proj/r1", state, release=False))
    assert second.sent_files == 0  # the host's cache had both
    assert second.kept_files == 19  # of 21 files: the two touched were copied again
    assert remote_listing(rig, second.root) == local_listing(folder)
    # What the user cannot remove (a root-owned output): the tree is set aside, made anew.
    run(release(rig, second.root))
    rig.sh(f"mkdir {tree}/work/outputs/locked && touch {tree}/work/outputs/locked/f", check=True)
    third = run(sync(rig, folder, base, "proj/r2", state, release=False))
    assert third.kept_files == 0 and third.sent_files == 0
    assert remote_listing(rig, third.root) == local_listing(folder)


async def release(rig: Rig, root: str) -> None:
    conn = await connect(endpoint(rig))
    try:
        await release_remote(conn, root)
    finally:
        conn.close()


def test_a_host_whose_tree_is_another_gets_the_whole_tree(
        rig: Rig, base: str, tmp_path: Path) -> None:
    folder, state = tmp_path / "p", tmp_path / "state"
    make_tree(folder, 30)
    run(sync(rig, folder, base, "proj/r0", state))
    rig.sh(f"rm {base}/proj/.manifest.json", check=True)  # as if another client synced last
    (folder / "d0" / "f7.txt").write_text("moved on\n")
    second = run(sync(rig, folder, base, "proj/r1", state, release=False))
    assert second.sent_files == 1
    assert remote_listing(rig, second.root) == local_listing(folder)
    # And the client's record lost: the whole tree again, nothing resent.
    (state / "rec.json").unlink()
    third = run(sync(rig, folder, base, "proj/r2", state, release=False))
    assert third.sent_files == 0 and third.bytes_sent > 1_000
    assert remote_listing(rig, third.root) == local_listing(folder)


def test_progress_lines_and_the_cache_filled_after_the_answer(
        rig: Rig, base: str, tmp_path: Path) -> None:
    folder, state = tmp_path / "p", tmp_path / "state"
    folder.mkdir()
    for i in range(3):  # past the 8 MB cached before the answer
        (folder / f"big{i}.bin").write_bytes(os.urandom(4 << 20))
    (folder / "small.txt").write_text("small\n" * 1000)
    lines: list[str] = []
    first = run(sync(rig, folder, base, "a/r0", state, progress=lines))
    assert first.sent_files == 4
    parsed = [SYNC_PROGRESS.match(line) for line in lines]
    assert lines and all(parsed), lines
    last = parsed[-1]
    assert last is not None and last.group(1) == last.group(2) == "4"
    assert last.group(3) == last.group(4) == "12.0"
    rig.sh(f"flock {base}/cache/.fill.lock true", check=True)  # the fill is done
    cached = rig.sh(f"ls {base}/cache").stdout.split()
    assert len([name for name in cached if not name.startswith(".")]) == 4
    # Another project with the same files: the host's cache has them all.
    other = run(sync(rig, folder, base, "b/r0", tmp_path / "state-b"))
    assert other.sent_files == 0 and other.payload_bytes == 0


def test_two_syncs_of_one_project_at_once(rig: Rig, base: str, tmp_path: Path) -> None:
    folder, state = tmp_path / "p", tmp_path / "state"
    make_tree(folder, 50)
    run(sync(rig, folder, base, "proj/r0", state))  # a tree to claim

    async def both() -> tuple[SyncResult, SyncResult]:
        return await asyncio.gather(sync(rig, folder, base, "proj/r1", state, release=False),
                                    sync(rig, folder, base, "proj/r2", state, release=False))

    results = run(both())
    assert sorted(r.kept_files for r in results)[0] == 0  # one claimed the tree, one did not
    for result in results:
        assert remote_listing(rig, result.root) == local_listing(folder)


def test_stamp_cache_rehashes_a_file_written_with_its_stamp_put_back(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a" * 100)
    old = time.time() - 60
    os.utime(path, (old, old))
    cache_file = tmp_path / "stamps.json"
    time.sleep(StampCache.RACY + 0.1)  # the ctime is not racy any more
    cache = StampCache(cache_file)
    first = cache.digest(path, path.lstat())
    cache.save()
    again = StampCache(cache_file)
    assert again.digest(path, path.lstat()) == first and again.hits == 1
    with open(path, "r+b") as f:  # same size, mtime put back: only ctime tells
        f.write(b"b")
    os.utime(path, (old, old))
    changed = StampCache(cache_file)
    assert changed.digest(path, path.lstat()) == hashlib.sha256(b"b" + b"a" * 99).hexdigest()
    assert changed.hits == 0
    fresh = tmp_path / "g"  # just written: hashed, not remembered (racy)
    fresh.write_bytes(b"x")
    changed.digest(fresh, fresh.lstat())
    changed.save()
    assert str(fresh) not in StampCache(cache_file).old


def test_a_runs_content_addressed_snapshot_gives_the_hashes_without_reading_files(
        tmp_path: Path) -> None:
    """A submit's snapshot folder is a checkout of its manifest (runs/<id>/snapshot.json): the
    sync takes the hashes from there, the same tree as hashing the checkout would give."""
    from backends import objects, snapshot

    project, state, run_dir = tmp_path / "proj", tmp_path / "state", tmp_path / "run"
    make_tree(project, 40)
    (project / "link").unlink()  # a link to a file travels as its content; keep it simple
    (project / "empty").mkdir()
    run_dir.mkdir()
    manifest = objects.snapshot(project, snapshot.list_files(project), state)
    manifest.save(run_dir)
    checkout = run_dir / "snapshot"
    objects.materialise(manifest, state, checkout)
    from_json = manifest_from_snapshot(run_dir, checkout)
    assert from_json is not None
    hashed = build_manifest([("work", checkout)])
    assert from_json.entries() == hashed.entries()
    assert {k: v[1] for k, v in from_json.blobs.items()} == {
        k: v[1] for k, v in hashed.blobs.items()}
    assert "work/run.sh" in dict(from_json.files) and dict(from_json.files)[
        "work/run.sh"].endswith("x")
    (run_dir / "snapshot.json").write_text('{"version": 99, "files": []}')
    assert manifest_from_snapshot(run_dir, checkout) is None  # unknown: hash instead


def test_many_small_files_with_shared_content_and_a_large_one(
        rig: Rig, base: str, tmp_path: Path) -> None:
    """The host writes small blobs from several threads and copies duplicates after them: every
    file is there with its content and mode, the copies of a blob included (made only once the
    blob is written), beside one past the size written as it streams; a second project gets
    them all from the cache."""
    folder, state = tmp_path / "p", tmp_path / "state"
    for i in range(400):
        sub = folder / f"d{i % 9}"
        sub.mkdir(parents=True, exist_ok=True)
        body = f"shared {i % 25}\n" * 300 if i % 2 else os.urandom(3000 + i)
        path = sub / f"f{i}.bin"
        path.write_bytes(body.encode() if isinstance(body, str) else body)
        if i % 7 == 0:
            path.chmod(0o755)
    (folder / "big.bin").write_bytes(os.urandom(3 << 20))
    (folder / "big-copy.bin").write_bytes((folder / "big.bin").read_bytes())
    first = run(sync(rig, folder, base, "m/r0", state, release=False))
    keys = {v for v in local_listing(folder).values() if len(v) >= 64}
    assert len(keys) < 260 and first.sent_files == len(keys)  # each distinct blob once
    assert remote_listing(rig, first.root) == local_listing(folder)
    rig.sh(f"flock {base}/cache/.fill.lock true", check=True)
    other = run(sync(rig, folder, base, "n/r0", tmp_path / "state-n", release=False))
    assert other.sent_files == 0
    assert remote_listing(rig, other.root) == local_listing(folder)
