"""The local target: the script runs as a process on this machine, in its own session."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

from . import localstart, procutil
from .base import (
    Backend,
    Capability,
    EnvRef,
    Explanation,
    LogBatch,
    PrepareOptions,
    RunContext,
    RunHandle,
    TargetInfo,
)
from .errors import TargetError
from .linesplit import LineSplitter
from .localstart import LocalProcess
from .rawbatch import RawBatch, merged
from .syncsupervisor import FLOOD_GATHER_S, FLOOD_READ

READ_CHUNK = 1 << 20  # what a pipe holds when the supervisor falls behind: one batch
PIPE_SIZE = 1 << 20  # the most an unprivileged process may ask (fs/pipe-max-size's default)
QUEUE_BATCHES = 64  # read but not yet written, at most (a flood waits in the pipe, not here)


class LocalBackend(Backend):
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CANCEL, Capability.LIVE_METRICS}
    )

    def interpreter(self) -> str:
        return localstart.interpreter(self.compute)

    def run_env(self, ctx: RunContext) -> dict[str, str]:
        env = localstart.run_env(self.compute, ctx)
        from .spark import plan as spark  # a few small modules, no JVM

        if spark.is_spark(ctx):  # the driver and its workers run the target's Python
            env.update(spark.env(self.compute.python_location or sys.executable))
        return env

    def explain(self, ctx: RunContext) -> Explanation:
        python = self.compute.python_location or sys.executable
        from .spark import plan as spark

        if spark.is_spark(ctx):  # Framework PySpark: spark-submit, never silently python
            command = spark.command(ctx, python, spark.master(self.compute))
            how = f"spark-submit --master {spark.master(self.compute)} in its own session"
        else:
            command, how = [python, *ctx.argv], "a process in its own session"
        return Explanation(
            commands=[command],
            workdir=str(ctx.workdir),
            env=self.run_env(ctx),
            notes=[f"local target {self.compute.name!r}: {how}"],
        )

    async def prepare(self, ctx: RunContext, options: PrepareOptions) -> EnvRef:
        return EnvRef(self.interpreter(), cached=True)

    @classmethod
    def abandon(cls, durable_ref: str) -> None:
        """Kill the process group of a run whose supervisor died (it cannot be taken up)."""
        kind, _, pgid = durable_ref.partition(":")
        if kind == "pid" and pgid.isdigit():
            procutil.signal_tree(int(pgid), [], signal.SIGKILL)

    async def describe(self) -> TargetInfo:
        # A local run sees this machine's GPUs, so the inventory belongs here too.
        from . import gpu  # nvidia-smi only when asked: keeps the run path's imports lean

        try:
            self.interpreter()
        except TargetError as err:
            return TargetInfo(False, str(err))
        gpus, note = await gpu.local_inventory()
        return TargetInfo(True, "this machine", gpus, note)

    async def start(self, ctx: RunContext, env: EnvRef) -> RunHandle:
        shared = ctx.compute.shared_volumes
        if isinstance(ctx.early, LocalProcess):  # started the moment the run arrived
            started, ctx.early = ctx.early, None
            return SpawnedRunHandle(started, ctx.workdir, shared=shared)
        # The script's orphans (double-forked daemons) re-parent to this supervisor, where
        # cancel finds them; only local runs have descendants here.
        procutil.become_subreaper()
        localstart.make_dirs(self.compute, ctx)
        if ctx.compute.shared_volumes:  # which of the project's outputs/ will be this run's
            from .outputs import take_baseline

            take_baseline(ctx.workdir / "outputs", ctx.outputs_dir)
        from .spark import plan as spark

        if not spark.is_spark(ctx):
            return SpawnedRunHandle(localstart.start_plain(ctx, env.ref), ctx.workdir, shared)
        # Framework PySpark: spark-submit, never silently python
        full_env = {**os.environ, **self.run_env(ctx)}
        command = spark.command(ctx, env.ref, spark.master(self.compute))
        spark.check_java()
        try:
            proc = await asyncio.create_subprocess_exec(
                *command,
                cwd=ctx.workdir,
                env=full_env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group: cancel reaches every child
            )
        except OSError as err:
            raise TargetError(f"cannot start {command[0]}: {err.strerror}") from err
        # spark-submit's stderr tells the application id and the UI
        return spark.process_handle(proc, ctx, spark.master(self.compute))


class LocalRunHandle(RunHandle):
    def __init__(self, proc: asyncio.subprocess.Process, workdir: Path, shared: bool):
        self.proc = proc
        self.workdir = workdir
        self.shared = shared
        self.durable_ref = f"pid:{proc.pid}"
        self._queue: asyncio.Queue[LogBatch | None] | None = None

    def pending_lines(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def logs(self) -> AsyncIterator[LogBatch]:
        queue: asyncio.Queue[LogBatch | None] = asyncio.Queue(maxsize=QUEUE_BATCHES)
        self._queue = queue
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for fd in (1, 2):
            _widen_pipe(self.proc, fd)
        readers = [
            asyncio.create_task(_pump(self.proc.stdout, "out", queue)),
            asyncio.create_task(_pump(self.proc.stderr, "err", queue)),
        ]
        try:
            async for batch in _joined(queue, len(readers)):
                yield batch
        finally:
            for task in readers:
                task.cancel()

    async def _exited(self) -> int:
        return await exited(self.proc)

    async def wait(self) -> int:
        code = await self._exited()
        # Children the script left behind (daemons, double forks) would hold its pipes open and
        # outlive the run: stop them too. The supervisor is a subreaper, so they are findable:
        # each is, or descends from, a child of this process (orphans were re-parented here
        # before the exit was signalled). None (nearly always): no scan of /proc, no thread.
        if _children_besides(self.proc.pid) != []:
            await asyncio.to_thread(self._stop_tree, 2.0)
        return code

    def _leftovers(self) -> list[int]:
        return procutil.leftovers(self.proc.pid)

    def _stop_tree(self, grace: float) -> None:
        procutil.stop_leftovers(self.proc.pid, grace)

    async def cancel(self, grace: float) -> None:
        pids = [self.proc.pid, *self._leftovers()]
        procutil.signal_tree(self.proc.pid, pids, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), grace)
        except TimeoutError:
            pass
        left = [p for p in [self.proc.pid, *self._leftovers()] if procutil.alive(p)]
        if left:
            procutil.signal_tree(self.proc.pid, left, signal.SIGKILL)
        await asyncio.to_thread(self._stop_tree, 1.0)

    async def collect_outputs(self, dest: Path) -> list[str]:
        if _empty_dir(self.workdir / "outputs"):  # most runs: no thread, no import
            return []
        from .outputs import collect_outputs_dir  # at the run's end only

        # A snapshot's outputs/ is the run's alone: moved. The project's own (sharedVolumes)
        # holds earlier runs' files too: only what this run created or changed is copied.
        return await asyncio.to_thread(
            collect_outputs_dir, self.workdir / "outputs", dest, not self.shared
        )


async def exited(proc: asyncio.subprocess.Process) -> int:
    """The exit code once the process has exited. asyncio's ``Process.wait()`` also waits for
    its pipes to close, which a child the script left behind holding them puts off for as long
    as it lives (so the leftovers would never be stopped); a pidfd says the moment it exits."""
    if proc.returncode is not None:
        return proc.returncode
    try:
        fd = os.pidfd_open(proc.pid)
    except (OSError, AttributeError):  # no pidfd (old kernel): asyncio's own wait
        return await proc.wait()
    loop = asyncio.get_running_loop()
    try:
        gone: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not gone.done():
                gone.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await gone
        finally:
            loop.remove_reader(fd)
        try:  # WNOWAIT: asyncio's child watcher still reaps it
            info = os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            info = None
    finally:
        os.close(fd)
    if info is None:  # reaped meanwhile: asyncio has, or is about to have, its code
        while proc.returncode is None:
            await asyncio.sleep(0.005)
        return proc.returncode
    if info.si_code == os.CLD_EXITED:
        return info.si_status
    return -info.si_status  # killed by a signal, as asyncio reports it


def _empty_dir(path: Path) -> bool:
    """``path`` is a folder with nothing in it, or is not there at all."""
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is None
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _children_besides(pid: int) -> list[int] | None:
    """This process's children other than ``pid`` (/proc/self/task/*/children); None when the
    kernel does not list them (no CONFIG_PROC_CHILDREN): then only a scan can say."""
    found: list[int] = []
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as fh:
                found += [int(p) for p in fh.read().split() if int(p) != pid]
    except (OSError, ValueError):
        return None
    return found


def _widen_pipe(proc: asyncio.subprocess.Process, fd: int) -> None:
    """Let the script's pipe hold 1 MiB, not 64 KiB: a script that floods it runs ahead while
    the supervisor waits for a CPU, instead of blocking every 64 KiB (a switch each time)."""
    transport = getattr(proc, "_transport", None)
    pipe = transport.get_pipe_transport(fd) if transport is not None else None
    handle = pipe.get_extra_info("pipe") if pipe is not None else None
    if handle is not None:
        try:
            fcntl.fcntl(handle.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except (OSError, AttributeError):  # over the system's limit, or not Linux: as it is
            pass


async def _pump(
    stream: asyncio.StreamReader, name: str, queue: asyncio.Queue[LogBatch | None]
) -> None:
    """Split a byte stream into lines (linesplit.py), one batch per read; a partial line waits
    for the rest (or for EOF). A progress state held back by the splitter's throttle is given
    out once it is due, even when the script goes quiet meanwhile."""
    splitter = LineSplitter()
    loop = asyncio.get_running_loop()
    try:
        while True:
            due = splitter.due()
            if due is None:
                chunk = await stream.read(READ_CHUNK)
            else:
                try:  # StreamReader.read loses nothing when the timeout cancels it
                    chunk = await asyncio.wait_for(stream.read(READ_CHUNK),
                                                   max(0.0, due - loop.time()))
                except TimeoutError:
                    if lines := splitter.tick(loop.time()):
                        await queue.put(LogBatch(name, lines))
                    continue
            if not chunk:
                break
            if lines := splitter.feed(chunk, loop.time()):
                await queue.put(LogBatch(name, lines))
        if lines := splitter.flush():
            await queue.put(LogBatch(name, lines))
    finally:
        await queue.put(None)


class SpawnedProcess:
    """A script started by localstart.py, as the event loop sees it: ``pid``, ``returncode``
    and ``wait()`` as asyncio's Process has them; its exit is seen by a pidfd (a thread's
    ``waitpid`` without one) and reaped here."""

    def __init__(self, started: LocalProcess):
        self.pid = started.pid
        self.returncode: int | None = None
        self._exit: asyncio.Future[int] | None = None

    async def wait(self) -> int:
        if self.returncode is not None:
            return self.returncode
        if self._exit is None:
            self._exit = asyncio.ensure_future(self._watch())
        return await asyncio.shield(self._exit)  # a timed-out waiter leaves the watch on

    async def _watch(self) -> int:
        loop = asyncio.get_running_loop()
        try:
            fd = os.pidfd_open(self.pid)
        except (OSError, AttributeError):  # no pidfd (old kernel)
            status = await asyncio.to_thread(_reap, self.pid)
        else:
            try:
                await _readable(loop, fd)
            finally:
                os.close(fd)
            status = _reap(self.pid)
        self.returncode = os.waitstatus_to_exitcode(status) if status >= 0 else 255
        return self.returncode


def _reap(pid: int) -> int:
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:  # reaped by someone else: its code is lost
        return -1


async def _readable(loop: asyncio.AbstractEventLoop, fd: int,
                    timeout: float | None = None) -> bool:
    """Whether ``fd`` became readable (False: ``timeout`` seconds passed first)."""
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        if timeout is None:
            await ready
        else:
            await asyncio.wait_for(ready, timeout)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)


class SpawnedRunHandle(LocalRunHandle):
    """A local run started by localstart.py: its pipes read straight from their fds, plain
    output passed on as bytes (rawbatch.py)."""

    def __init__(self, started: LocalProcess, workdir: Path, shared: bool):
        super().__init__(SpawnedProcess(started), workdir, shared)  # type: ignore[arg-type]
        self._fds = [started.out_fd, started.err_fd]

    async def _exited(self) -> int:
        return await self.proc.wait()

    async def logs(self) -> AsyncIterator[LogBatch]:
        queue: asyncio.Queue[LogBatch | None] = asyncio.Queue(maxsize=QUEUE_BATCHES)
        self._queue = queue
        readers = [
            asyncio.create_task(_pump_fd(self._fds, 0, "out", queue)),
            asyncio.create_task(_pump_fd(self._fds, 1, "err", queue)),
        ]
        try:
            async for batch in _joined(queue, len(readers)):
                yield batch
        finally:
            for task in readers:
                task.cancel()

    async def close(self) -> None:
        for i, fd in enumerate(self._fds):
            if fd >= 0:
                self._fds[i] = -1
                os.close(fd)
        await super().close()


async def _joined(queue: asyncio.Queue[LogBatch | None],
                  open_streams: int) -> AsyncIterator[LogBatch]:
    """The batches of ``open_streams`` readers (each ends with None), with what else is
    already read joined to each: a stream's reads in a row are one batch (they share the time
    they are written at; ``rawbatch.merged`` keeps byte blocks as bytes)."""
    while open_streams:
        item = await queue.get()
        while item is not None and not queue.empty():
            nxt = queue.get_nowait()
            if nxt is None:
                open_streams -= 1
            elif (both := merged(item, nxt)) is not None:
                item = both
            else:
                yield item
                item = nxt
        if item is None:
            open_streams -= 1
        else:
            yield item


async def _pump_fd(fds: list[int], index: int, name: str,
                   queue: asyncio.Queue[LogBatch | None]) -> None:
    """``_pump`` for a pipe's fd (non-blocking): read what is there (up to 1 MiB), wait only
    when nothing is; plain reads go on as bytes (``LineSplitter.feed_block``). The fd is
    closed at its end."""
    fd = fds[index]
    splitter = LineSplitter()
    loop = asyncio.get_running_loop()
    try:
        while True:
            try:
                chunk = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                due = splitter.due()
                timeout = None if due is None else max(0.0, due - loop.time())
                if not await _readable(loop, fd, timeout) and (lines := splitter.tick(loop.time())):
                    await queue.put(LogBatch(name, lines))
                continue
            if not chunk:
                break
            if len(chunk) >= FLOOD_READ:  # a flood: let it gather (syncsupervisor.py)
                await asyncio.sleep(FLOOD_GATHER_S)
            block = splitter.feed_block(chunk)
            if block is not None:
                if block:
                    await queue.put(RawBatch(name, block))
            elif lines := splitter.feed(chunk, loop.time()):
                await queue.put(LogBatch(name, lines))
        if lines := splitter.flush():
            await queue.put(LogBatch(name, lines))
    finally:
        if fds[index] >= 0:
            fds[index] = -1
            os.close(fd)
        await queue.put(None)
