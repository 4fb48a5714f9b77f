"""A run's resource use, sampled while it runs: CPU, memory and, where there is one, its GPUs.

``sample_resources`` is started by the run's supervisor beside the log pump, with the live handle
(or a durable reference), and appends one JSON object per ``interval`` to
``runs/<id>/resources.jsonl`` until ``stop`` is set or the run is gone:

    {"t": 1767225600.5, "cpu": 153.2, "rss": 104857600, "gpu_mem": 2147483648, "gpu_util": 87}

``cpu`` is percent of one core (200 = two cores busy), ``rss`` bytes resident; ``gpu_mem`` (bytes)
and ``gpu_util`` (percent, of the busiest GPU the run uses) only where ``nvidia-smi`` is found and
lists the run's processes. The file keeps the last ``MAX_SAMPLES`` (it is cut when it grows a
quarter past that). Sources:

- a local process tree (``pid:N``: the script and every descendant), read with psutil;
- a container, by the Engine API's stats endpoint (``one-shot``, two samples make a CPU
  percentage as ``docker stats`` computes it), through a client of its own (docker/api.py's
  lean client, not the run's connection). GPU use of a container is looked up only on a local
  daemon (its ``top`` answers host pids that nvidia-smi can match).

A sampler never fails its run: an error ends the sampling, said once in the returned text.
psutil is imported when a local run is first sampled (the supervisor's start does not pay it).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

FILE = "resources.jsonl"
SAMPLE_S = 1.0
MAX_SAMPLES = 3600  # an hour at one a second
NVIDIA_TIMEOUT_S = 5.0
MIB = 1 << 20


class ContainerRef:
    """A container on the daemon at ``url`` (``unix://...`` or ``tcp://...``); ``local_daemon``:
    its host pids are this machine's (its GPU use can be matched). A plain class: the supervisor
    that imports this module never loads ``dataclasses`` (tests/unit/test_import_budget.py)."""

    __slots__ = ("cid", "local_daemon", "url")

    def __init__(self, url: str, cid: str, local_daemon: bool = True):
        self.url = url
        self.cid = cid
        self.local_daemon = local_daemon


class Source(Protocol):
    async def sample(self) -> dict[str, float] | None:
        """cpu and rss now; None once the run is gone; {} for none this time."""

    async def pids(self) -> list[int]:
        """This machine's pids of the run (for nvidia-smi); [] when not knowable."""

    async def close(self) -> None: ...


class ProcessTree:
    """A local process and its descendants."""

    def __init__(self, pid: int):
        import psutil  # ~90 ms: only once a local run is sampled

        self._psutil = psutil
        self.root = psutil.Process(pid)
        self._procs: dict[int, Any] = {}

    def _tree(self) -> list[Any]:
        psutil = self._psutil
        try:
            found = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        procs = {}
        for proc in found:  # the same objects as before: cpu_percent measures since then
            procs[proc.pid] = self._procs.get(proc.pid, proc)
        self._procs = procs
        return list(procs.values())

    async def sample(self) -> dict[str, float] | None:
        return await asyncio.to_thread(self._sample)

    def _sample(self) -> dict[str, float] | None:
        psutil = self._psutil
        if not self.root.is_running() or self.root.status() == psutil.STATUS_ZOMBIE:
            return None
        cpu = 0.0
        rss = 0
        for proc in self._tree():
            try:
                with proc.oneshot():
                    cpu += proc.cpu_percent(None)  # 0.0 the first time a process is seen
                    rss += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return {"cpu": round(cpu, 1), "rss": rss}

    async def pids(self) -> list[int]:
        return list(self._procs)

    async def close(self) -> None:
        pass


class Container:
    """A container's stats from the Engine API, one-shot answers differenced."""

    def __init__(self, ref: ContainerRef):
        from .docker.api import DockerAPI

        self.ref = ref
        self.api = DockerAPI(ref.url)
        self._last: tuple[float, float] | None = None  # container CPU ns, system CPU ns

    async def sample(self) -> dict[str, float] | None:
        from .docker.http import APIError

        try:
            stats = await self.api.json("GET", f"/containers/{self.ref.cid}/stats",
                                        {"stream": "false", "one-shot": "true"})
        except APIError as err:
            if err.status == 404:
                return None
            raise
        except (OSError, EOFError):
            if self.ref.local_daemon:
                raise
            # A remote daemon's SSH link is down for a moment (its run handle reconnects): no
            # sample this time, not the end of sampling (it was, for the rest of the run).
            return {}
        if not isinstance(stats, dict) or not stats.get("read", "").strip("0-:TZ."):
            return None  # a stopped container answers zeros
        cpu_stats = stats.get("cpu_stats") or {}
        used = float((cpu_stats.get("cpu_usage") or {}).get("total_usage") or 0)
        system = float(cpu_stats.get("system_cpu_usage") or 0)
        cpus = int(cpu_stats.get("online_cpus") or 0) or len(
            (cpu_stats.get("cpu_usage") or {}).get("percpu_usage") or [1])
        cpu = 0.0
        if self._last is not None and system > self._last[1]:
            cpu = max(0.0, (used - self._last[0]) / (system - self._last[1]) * cpus * 100)
        self._last = (used, system)
        memory = stats.get("memory_stats") or {}
        inner = memory.get("stats") or {}
        # What `docker stats` shows: usage less the page cache it could drop.
        cache = inner.get("total_inactive_file", inner.get("inactive_file", 0)) or 0
        rss = max(0, int(memory.get("usage") or 0) - int(cache))
        return {"cpu": round(cpu, 1), "rss": rss}

    async def pids(self) -> list[int]:
        if not self.ref.local_daemon:
            return []
        from .docker.http import APIError

        try:
            top = await self.api.json("GET", f"/containers/{self.ref.cid}/top",
                                      {"ps_args": "-o pid"})
        except APIError:
            return []
        out = []
        for row in (top or {}).get("Processes") or []:
            try:
                out.append(int(row[0]))
            except (ValueError, IndexError, TypeError):
                continue
        return out

    async def close(self) -> None:
        await self.api.close()


def nvidia_smi() -> str | None:
    """nvidia-smi's path (``LABDECK_NVIDIA_SMI`` overrides, as for the GPU inventory)."""
    return os.environ.get("LABDECK_NVIDIA_SMI") or shutil.which("nvidia-smi")


async def _csv(exe: str, query: str) -> list[list[str]]:
    proc = await asyncio.create_subprocess_exec(
        exe, query, "--format=csv,noheader,nounits",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), NVIDIA_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return []
    if proc.returncode:
        return []
    return [[cell.strip() for cell in line.split(",")]
            for line in out.decode(errors="replace").splitlines() if line.strip()]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # "[N/A]", "[Not Supported]"
        return None


async def gpu_use(exe: str, pids: Iterable[int]) -> dict[str, float]:
    """GPU memory the processes ``pids`` hold and the utilisation of the busiest GPU they use;
    {} when none of them is on a GPU."""
    wanted = set(pids)
    if not wanted:
        return {}
    apps = await _csv(exe, "--query-compute-apps=pid,gpu_uuid,used_memory")
    memory = 0.0
    uuids = set()
    for row in apps:
        if len(row) < 3:
            continue
        pid = _number(row[0])
        if pid is None or int(pid) not in wanted:
            continue
        uuids.add(row[1])
        memory += _number(row[2]) or 0.0
    if not uuids:
        return {}
    out = {"gpu_mem": float(int(memory * MIB))}
    utils = [_number(row[1]) for row in await _csv(exe, "--query-gpu=uuid,utilization.gpu")
             if len(row) >= 2 and row[0] in uuids]
    known = [u for u in utils if u is not None]
    if known:
        out["gpu_util"] = max(known)
    return out


def source_for(handle_or_ref: object) -> Source | None:
    """What to sample for a run handle, a ``pid:N`` reference or a ContainerRef; None when
    the run's kind has nothing this machine can sample (a Spark cluster's driver)."""
    if isinstance(handle_or_ref, ContainerRef):
        return Container(handle_or_ref)
    ref = handle_or_ref if isinstance(handle_or_ref, str) else getattr(
        handle_or_ref, "durable_ref", None)
    if not isinstance(ref, str):
        return None
    if ref.startswith("pid:") and ref[4:].isdigit():
        return ProcessTree(int(ref[4:]))
    url = getattr(handle_or_ref, "url", None)
    if isinstance(url, str) and getattr(handle_or_ref, "api", None) is not None:
        from .docker.client import docker_url

        return Container(ContainerRef(url, ref, local_daemon=url == docker_url()))
    return None


class SampleFile:
    """``resources.jsonl``, appended, cut back to the last MAX_SAMPLES when it grows past."""

    def __init__(self, path: Path, keep: int = MAX_SAMPLES):
        self.path = path
        self.keep = keep
        try:
            with open(path, "rb") as fh:
                self.lines = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 16),
                                                                       b""))
        except FileNotFoundError:
            self.lines = 0

    def append(self, sample: dict[str, float]) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(sample, separators=(",", ":")) + "\n")
        self.lines += 1
        if self.lines > self.keep + self.keep // 4:
            with open(self.path, "rb") as fh:
                kept = fh.read().splitlines(keepends=True)[-self.keep:]
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_bytes(b"".join(kept))
            os.replace(tmp, self.path)
            self.lines = len(kept)


async def sample_resources(run_id: str, handle_or_ref: object, run_dir: Path,
                           stop: asyncio.Event, interval: float = SAMPLE_S,
                           first_after: float | None = None) -> str | None:
    """Append the run's resource use to ``run_dir/resources.jsonl`` every ``interval`` seconds
    until ``stop`` is set or the run is gone. Returns None, or why sampling ended early (an
    error is never raised: the run goes on without samples).

    The first sample is taken ``interval`` after the start, its source made in a thread (psutil's
    import): a run shorter than that costs its supervisor's event loop nothing."""
    try:
        await asyncio.wait_for(stop.wait(), interval if first_after is None else first_after)
        return None
    except TimeoutError:
        pass
    try:
        source = await asyncio.to_thread(source_for, handle_or_ref)
    except Exception as err:
        if type(err).__name__ in ("NoSuchProcess", "ZombieProcess"):
            return None  # the script ended before its first sample: nothing went wrong
        return f"no resource samples for run {run_id}: {type(err).__name__}: {err}"
    if source is None:
        return None
    out = SampleFile(run_dir / FILE)
    gpu = nvidia_smi()
    try:
        while not stop.is_set():
            started = time.monotonic()
            sample = await source.sample()
            if sample is None or stop.is_set():
                break
            if sample:  # {}: none this time (a remote link reconnecting)
                if gpu is not None:
                    sample.update(await gpu_use(gpu, await source.pids()))
                out.append({"t": round(time.time(), 3), **sample})
            left = interval - (time.monotonic() - started)
            try:
                await asyncio.wait_for(stop.wait(), max(0.05, left))
            except TimeoutError:
                pass
    except asyncio.CancelledError:
        raise
    except Exception as err:  # the daemon went away, the folder was removed...
        return f"resource sampling of run {run_id} stopped: {type(err).__name__}: {err}"
    finally:
        await source.close()
    return None


def read_samples(run_dir: Path, last: int = 120) -> list[dict[str, float]]:
    """The last ``last`` samples of a run (fewer, or none: a run not sampled)."""
    path = run_dir / FILE
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = max(0, size - last * 160)
            fh.seek(start)
            data = fh.read()
    except OSError:
        return []
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # cut through
    out = []
    for line in lines[-(last + 1):]:
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out[-last:]
