"""The remotedocker target on the rig (scripts/start-rigs.sh), side by side with the tools a user
would reach for, in one run:

- submit of a no-op (``labdeck submit -c rig noop.py``: sync, container, log, outputs, removal)
  vs ``docker -H ssh://rig run --rm IMAGE python3 -c pass``; goal <= 1.0x;
- initial sync of a 5,000-file 200 MB project (half random, half text; as a submit syncs: the
  hashes from the run's snapshot.json, made beforehand by the snapshot every submit takes, the
  tree, one framed stream of the blobs, the run folder; a fresh client state and a fresh host
  folder each round) vs ``rsync -az`` over the same sshd to a fresh folder; goal <= 1.2x
  rsync's time; with ``--hashed-initial``, once more with every file hashed during the
  handshake (a sync without a snapshot.json: Spark's head node today);
- resync after a one-file change (labdeck: the previous run's folder released as the project's
  tree, as a run's end does; rsync: its existing folder): time and bytes sent; goal <= 1.2x
  for both; once more for labdeck with every file hashed again (a fresh snapshot copy);
- the CPU seconds each side spent (this machine and the rig's container), which the shared
  machine's load moves less than wall times.

Both sides log in with the same key through a temporary HOME whose ~/.ssh/config has the rig's
Host entry (``docker -H ssh://`` takes options only from ssh's config; a wrapper ``ssh`` first on
PATH passes ``-F`` with it, since OpenSSH reads the passwd home, not $HOME). Usage:
    python bench/bench_remote_rig.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import REPO, byte_compile, labdeck_cli, median, ms, report, side_by_side

FILES = 5_000
TOTAL = 200 * 1000 * 1000


def rig_facts() -> dict[str, object]:
    subprocess.run(["bash", str(REPO / "scripts" / "start-rigs.sh")], check=True,
                   capture_output=True)
    facts: dict[str, object] = json.loads(
        (REPO / ".labdeck-rigs" / "remotedocker.json").read_text())
    return facts


def client_home(facts: dict[str, object], root: Path) -> dict[str, str]:
    home = root / "home"
    ssh = home / ".ssh"
    ssh.mkdir(parents=True, mode=0o700)
    (ssh / "known_hosts").write_text(f"[{facts['host']}]:{facts['port']} {facts['host_key']}\n")
    (ssh / "config").write_text(
        f"Host rig\n  HostName {facts['host']}\n  Port {facts['port']}\n  User {facts['user']}\n"
        f"  IdentityFile {facts['identity_file']}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {ssh / 'known_hosts'}\n  StrictHostKeyChecking yes\n")
    # OpenSSH reads the passwd entry's home, not $HOME: an ``ssh`` first on PATH names the file
    # (docker -H ssh:// and rsync both run plain ``ssh``).
    bin_dir = root / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("ssh")} -F {ssh / "config"} "$@"\n')
    wrapper.chmod(0o755)
    return {**os.environ, "HOME": str(home), "SSH_AUTH_SOCK": "", "LABDECK_SECRETS": "file",
            "XDG_CONFIG_HOME": str(root / "xdg"),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def make_project(folder: Path) -> None:
    """5,000 files, 200 MB: half random (incompressible), half repetitive text."""
    size = TOTAL // FILES
    for i in range(FILES):
        sub = folder / f"d{i % 50:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        if i % 2:
            data = os.urandom(size)
        else:
            data = (f"line {i} of a text file that compresses well\n" * (size // 40 + 1)
                    ).encode()[:size]
        (sub / f"f{i:05d}.dat").write_bytes(data)


class CPU:
    """CPU seconds spent by this process (labdeck's client: threads too), its children (rsync
    and its ssh) and the rig (its container's cgroup: sshd, the host-side program, rsync there)
    with the docker-proxy in front of it: the work each side costs, whatever else the machine
    runs meanwhile (wall times on a shared machine move with the load)."""

    def __init__(self, facts: dict[str, object]):
        cid = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", str(facts["container"])],
                             capture_output=True, text=True, check=True).stdout.strip()
        self.cgroup = next((p for p in (Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage"),
                                        Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/"
                                             "cpu.stat")) if p.exists()), None)
        port = str(facts["port"])
        self.proxies = [int(pid) for pid in subprocess.run(
            ["pgrep", "-f", f"docker-proxy .*-host-port {port} "], capture_output=True,
            text=True).stdout.split()]

    def rig(self) -> float:
        total = 0.0
        if self.cgroup is not None:
            text = self.cgroup.read_text()
            total += (int(text) / 1e9 if text.strip().isdigit()
                      else int(text.split()[1]) / 1e6)  # usage_usec
        tick = os.sysconf("SC_CLK_TCK")
        for pid in self.proxies:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
            except (OSError, IndexError, ValueError):
                pass
        return total

    def here(self) -> float:
        import resource

        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


async def labdeck_sync(facts: dict[str, object], folder: Path, base: str, run: str,
                       state: Path, stamps: bool = True, snapshot: Path | None = None
                       ) -> tuple[float, int, dict[str, float]]:
    """As a submit syncs: the handshake while the files are hashed (``state``: the stamp cache
    and the record of the host's tree), the difference, the blobs the host lacks, the run
    folder. Then, untimed, what the run's end does (its folder becomes the project's tree) and
    a wait for the host's cache fill (it goes on after the answer, while a run would start).
    ``snapshot``: a run folder whose snapshot.json gives the hashes, as a submit's does."""
    from backends.ssh.connection import SSHEndpoint, connect
    from backends.ssh.sync import (
        Manifest,
        build_manifest,
        manifest_from_snapshot,
        release_remote,
        sync_run,
    )

    endpoint = SSHEndpoint(host=str(facts["host"]), port=int(str(facts["port"])),
                           username=str(facts["user"]),
                           identity_file=str(facts["identity_file"]))
    began = time.perf_counter()
    if snapshot is not None:
        def read() -> Manifest:
            manifest = manifest_from_snapshot(snapshot, folder)
            if manifest is None:
                raise SystemExit(f"{snapshot}/snapshot.json is unreadable")
            return manifest
        hashing = asyncio.ensure_future(asyncio.to_thread(read))
    else:
        hashing = asyncio.ensure_future(asyncio.to_thread(
            build_manifest, [("work", folder)], (), state / "stamps.json" if stamps else None))
    conn = await connect(endpoint)
    try:
        result = await sync_run(conn, run, hashing, base=base, record=state / "record.json")
        took = time.perf_counter() - began
        await release_remote(conn, result.root)
        await conn.run(f"flock {base}/cache/.fill.lock true", check=False)
    finally:
        conn.close()
    return took, result.bytes_sent, result.remote_marks


def snapshot_of(folder: Path, root: Path) -> Path:
    """A run folder with the snapshot.json a submit of ``folder`` writes (objects.snapshot:
    each file hashed and stored once; untimed, as every target's submit takes it). One object
    store for every round (only a changed file is stored again), its writes flushed before the
    timed sync: 200 MB of writeback would slow the rig's disk under the sync."""
    from backends import objects, snapshot

    run_dir = root / "run"
    run_dir.mkdir(parents=True)
    objects.snapshot(folder, snapshot.list_files(folder), root.parent / "objects").save(run_dir)
    os.sync()
    return run_dir


def rsync(env: dict[str, str], folder: Path, dest: str) -> tuple[float, int]:
    began = time.perf_counter()
    proc = subprocess.run(["rsync", "-az", "--stats", f"{folder}/", f"rig:{dest}/"], env=env,
                          capture_output=True, text=True, check=True)
    took = time.perf_counter() - began
    sent = re.search(r"Total bytes sent: ([\d,]+)", proc.stdout)
    return took, int(sent.group(1).replace(",", "")) if sent else -1


def rig_fs(env: dict[str, str]) -> str:
    return subprocess.run(["ssh", "rig", "stat -f -c %T /tmp"], env=env, capture_output=True,
                          text=True).stdout.strip() or "?"


def on_rig(env: dict[str, str], command: str) -> None:
    subprocess.run(["ssh", "rig", command], env=env, check=True, capture_output=True)


def bench_submit(env: dict[str, str], root: Path, image: str, rounds: int) -> list[str]:
    project = root / "proj"
    (project / "aml_config").mkdir(parents=True)
    facts = json.loads((REPO / ".labdeck-rigs" / "remotedocker.json").read_text())
    (project / "aml_config" / "rig.compute").write_text(
        f'type: remotedocker\naddress: "{facts["host"]}:{facts["port"]}"\n'
        f'username: "{facts["user"]}"\nprivateKeyFile: "{facts["identity_file"]}"\n'
        f'baseDockerImage: "{image}"\n')
    (project / "noop.py").write_text("pass\n")
    subprocess.run([labdeck_cli(), "prepare", "-c", "rig"], cwd=project, env=env, check=True,
                   capture_output=True)
    ours, theirs = side_by_side(
        [labdeck_cli(), "submit", "-c", "rig", "noop.py"],
        ["docker", "-H", "ssh://rig", "run", "--rm", image, "python3", "-c", "pass"],
        project, rounds, warmup=1, env=env)
    a, b = median(ours), median(theirs)
    return [f"submit no-op: labdeck {ms(a)} vs docker -H ssh:// run --rm {ms(b)}: "
            f"{a / b:.2f}x (goal <= 1.0x; {rounds} rounds)"]


def bench_sync(facts: dict[str, object], env: dict[str, str], root: Path,
               rounds: int, hashed_initial: bool = False) -> list[str]:
    """Per round, on fresh folders of the rig: labdeck's and rsync's initial sync, one file
    changed, both resyncs, and labdeck's resync once more with a cold stamp cache (as a sync
    without a snapshot.json hashes every file); which tool goes first alternates by round.
    labdeck's initial sync and resync take the hashes from a snapshot.json made (untimed)
    before each, as a submit's snapshot does."""
    folder = root / "big"
    make_project(folder)
    stamp = f"{os.getpid()}"
    cpu = CPU(facts)
    kinds = ("ld0", "rs0", "ld1", "rs1", "ld1c", "ld0h")
    times: dict[str, list[float]] = {k: [] for k in kinds}
    sent: dict[str, list[int]] = {k: [] for k in kinds}
    work: dict[str, list[float]] = {k: [] for k in kinds}
    marks: dict[str, dict[str, float]] = {}
    changed = folder / "d07" / "f00007.dat"

    def measure(kind: str, step: Callable[[], tuple[float, int]]) -> None:
        here, rig = cpu.here(), cpu.rig()
        took, n = step()
        times[kind].append(took)
        sent[kind].append(n)
        work[kind].append(cpu.here() - here + cpu.rig() - rig)

    Step = Callable[[], tuple[float, int]]

    def ours(base: str, run: str, state: Path, kind: str, stamps: bool = True,
             snapshot: Path | None = None) -> Callable[[], tuple[float, int]]:
        def step() -> tuple[float, int]:
            took, n, m = asyncio.run(labdeck_sync(facts, folder, base, run, state, stamps,
                                                  snapshot))
            marks[kind] = m
            return took, n
        return step

    try:
        for i in range(rounds):
            base, dest = f"/tmp/bench-ld-{stamp}-{i}", f"/tmp/bench-rs-{stamp}-{i}"
            state = root / f"state-{i}"  # a fresh client: no stamps, no record
            snap = snapshot_of(folder, root / f"snap-{i}-0")
            pair: list[tuple[str, Step]] = [
                ("ld0", ours(base, "p/r0", state, "ld0", snapshot=snap)),
                ("rs0", functools.partial(rsync, env, folder, dest))]
            for kind, step in pair if i % 2 == 0 else pair[::-1]:
                measure(kind, step)
            changed.write_bytes(os.urandom(changed.stat().st_size))
            snap = snapshot_of(folder, root / f"snap-{i}-1")
            pair = [("ld1", ours(base, "p/r1", state, "ld1", snapshot=snap)),
                    ("rs1", functools.partial(rsync, env, folder, dest))]
            for kind, step in pair if i % 2 == 0 else pair[::-1]:
                measure(kind, step)
            changed.write_bytes(os.urandom(changed.stat().st_size))
            measure("ld1c", ours(base, "p/r2", state, "ld1c", stamps=False))
            if hashed_initial:
                measure("ld0h", ours(f"{base}-h", "p/r0", root / f"state-{i}-h", "ld0h"))
            on_rig(env, f"rm -rf {base} {base}-h {dest}")
            shutil.rmtree(root / f"snap-{i}-0", ignore_errors=True)
            shutil.rmtree(root / f"snap-{i}-1", ignore_errors=True)
    finally:
        on_rig(env, f"rm -rf /tmp/bench-ld-{stamp}-* /tmp/bench-rs-{stamp}-*")
    t = {k: median(v) for k, v in times.items() if v}
    n = {k: int(median([float(x) for x in v])) for k, v in sent.items() if v}
    c = {k: median(v) for k, v in work.items() if v}
    first = [a / b for a, b in zip(times["ld0"], times["rs0"], strict=True)]
    again = [a / b for a, b in zip(times["ld1"], times["rs1"], strict=True)]
    lines = [
        f"initial sync, {FILES} files {TOTAL // 1_000_000} MB: labdeck {t['ld0']:.2f} s "
        f"({n['ld0'] / 1e6:.1f} MB sent, {c['ld0']:.2f} CPU s) vs rsync -az {t['rs0']:.2f} s "
        f"({n['rs0'] / 1e6:.1f} MB, {c['rs0']:.2f} CPU s): time {t['ld0'] / t['rs0']:.2f}x "
        f"(goal <= 1.2x; each round's ratio {', '.join(f'{r:.2f}' for r in first)}), "
        f"CPU {c['ld0'] / c['rs0']:.2f}x",
        f"resync after a one-file change: labdeck {t['ld1']:.2f} s, {n['ld1']:,} bytes, "
        f"{c['ld1']:.2f} CPU s vs rsync -az {t['rs1']:.2f} s, {n['rs1']:,} bytes, "
        f"{c['rs1']:.2f} CPU s: time {t['ld1'] / t['rs1']:.2f}x (goal <= 1.2x), bytes "
        f"{n['ld1'] / n['rs1']:.2f}x (goal <= 1.2x), CPU {c['ld1'] / c['rs1']:.2f}x; each "
        f"round's time ratio {', '.join(f'{r:.2f}' for r in again)}",
        f"resync, every file hashed again (no stamps, no snapshot.json): "
        f"labdeck {t['ld1c']:.2f} s, {t['ld1c'] / t['rs1']:.2f}x rsync's resync",
    ]
    if "ld0h" in t:
        lines.append(f"initial sync, every file hashed during the handshake (no snapshot.json): "
                     f"labdeck {t['ld0h']:.2f} s, {t['ld0h'] / t['rs0']:.2f}x rsync's")
    return [
        *lines,
        f"({rounds} rounds; medians; labdeck's times include its SSH handshake, reading the "
        "hashes and making the run folder on the host; rsync's its ssh start. CPU: this "
        "machine's "
        "processes and the rig's container with its docker-proxy)",
        f"the rig's /tmp is on {rig_fs(env)} (each file operation on FUSE is a round trip to "
        "its daemon: both tools create 5,000 files there)",
        "host phases of the last round (s since its program began): "
        + "; ".join(f"{k}: " + ", ".join(f"{p} {v:g}" for p, v in m.items())
                    for k, m in sorted(marks.items())),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sync-rounds", type=int, default=3)
    parser.add_argument("--only", choices=("submit", "sync", "connect"))
    parser.add_argument("--hashed-initial", action="store_true",
                        help="also an initial sync hashing every file (no snapshot.json)")
    args = parser.parse_args()
    if shutil.which("rsync") is None:
        raise SystemExit("rsync is missing on this machine (apt-get install rsync)")
    byte_compile()
    facts = rig_facts()
    root = Path(tempfile.mkdtemp(prefix="labdeck-bench-remote-"))
    try:
        env = client_home(facts, root)
        os.environ["HOME"] = env["HOME"]  # this process's own sync reads known_hosts there
        lines: list[str] = []
        if args.only in (None, "submit"):
            lines += bench_submit(env, root, str(facts["base_image"]), args.rounds)
        if args.only in (None, "sync"):
            lines += bench_sync(facts, env, root, args.sync_rounds, args.hashed_initial)
        report("remotedocker on the rig (vs docker -H ssh://, rsync -az)", lines)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
