"""The detached owner of one run: ``python -m backends.supervisor PROJECT RUN_ID [--reattach]``.

It drives the backend to the end (prepare, start, pump the log and metrics, wait, collect outputs,
clean up) and records each step in the store. Clients only read the store and the log file, and ask
for a cancel through the store plus SIGTERM, so closing or killing a client never touches a run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import traceback
from pathlib import Path

from . import metrics, phasetrace, prestart, procutil, registry
from .base import Backend, Capability, LogBatch, PrepareOptions, RunContext, RunHandle
from .errors import LabdeckError, ScriptFailed
from .linesplit import PROGRESS
from .logfile import LogWriter, reattach_point
from .project import Project
from .rawbatch import RawBatch
from .runspec import RunSpec
from .status import RunStatus
from .store import RunStore

CANCEL_GRACE = 3.0
CANCEL_POLL = 0.5
# A batch's text holding either needs a look line by line: a metric record, a progress state.
_SLOW_PATH = (metrics.MARKER[:1], PROGRESS)
_MARKER_B = metrics.MARKER[:1].encode()


class Supervisor:
    def __init__(self, project: Project, run_id: str, reattach: bool,
                 early: RunContext | None = None, done_fd: int | None = None):
        self.project = project
        # The client's "done" pipe (zygote.py), when this process holds its write end: closed
        # once the run's status is final, so the client wakes then, not after our teardown.
        self.done_fd = done_fd
        self.early = early  # the run's context with what its backend began (prestart.py)
        self.run_id = run_id
        self.reattach = reattach
        self.store = RunStore(project.db_path)
        self.run_dir = project.run_dir(run_id)
        self.log = LogWriter(self.run_dir / "log")
        self.cancel_event = asyncio.Event()
        self._closed = False
        self._ended = False  # the script has ended: a cancel now has nothing to stop
        self._cancel_acted = False  # the handle's cancel was sent while the script ran

    def note(self, text: str) -> None:
        self.log.write("sys", text)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.cancel_event.set)
        loop.add_signal_handler(signal.SIGINT, self.cancel_event.set)
        handle: RunHandle | None = None
        ctx: RunContext | None = self.early
        phasetrace.mark("sup-loop")
        if phasetrace.ENABLED:  # the script notes its start there (shim/sitecustomize.py)
            os.environ[phasetrace.FILE_ENV] = str(self.run_dir / "supervisor.log")
        try:
            ctx = ctx or prestart.run_context(self.project, self.run_id)
            ctx.progress = lambda m: self.log.write("sys", m)
            backend = registry.create(ctx.compute)
            if not self.reattach:  # a run under way is taken up whatever its file says now
                backend.validate(ctx.compute)  # a ConfigError fails the run with file:line
            # What this run can do (cancel, reattach...), for clients that never load backends.
            self.store.update(self.run_id, capabilities=sorted(c.value for c in backend.declared))
            phasetrace.mark("sup-backend-loaded")
            handle = await self._start(backend, ctx)
            if handle is None:
                return 1
            return await self._follow(backend, handle)
        except LabdeckError as err:
            await self._discard_early(ctx)
            if handle is not None:  # nothing of the run left once its status is terminal
                await self._close(handle)
            self.note(f"error: {err}")
            self.store.set_status(self.run_id, RunStatus.FAILED, error=str(err))
            return 1
        except Exception as err:  # the record must end terminal whatever broke
            await self._discard_early(ctx)
            if handle is not None:
                await self._close(handle)
            self.note(f"internal error: {err!r}")
            (self.run_dir / "supervisor-traceback.txt").write_text(traceback.format_exc())
            self.store.set_status(self.run_id, RunStatus.FAILED, error=f"internal error: {err!r}")
            return 1
        finally:
            if handle is not None:
                await self._close(handle)
            await self._discard_early(ctx)  # a no-op unless something escaped the above
            self.log.close()
            self.store.close()
            if self.done_fd is not None:
                os.close(self.done_fd)
                self.done_fd = None

    async def _close(self, handle: RunHandle) -> None:
        """``handle.close()`` once: before the terminal status normally, else on the way out."""
        if self._closed:
            return
        self._closed = True
        try:
            await handle.close()
        except Exception as err:  # cleanup problems are reported, not raised
            self.note(f"cleanup: {err}")

    async def _discard_early(self, ctx: RunContext | None) -> None:
        """Undo what the backend began before the event loop, for a run that does not go on;
        before its terminal status, so that nothing of it is left once the status says so."""
        if ctx is None or ctx.early is None:
            return
        early, ctx.early = ctx.early, None
        try:
            await asyncio.to_thread(early.discard)
        except Exception as err:
            self.note(f"cleanup: {err}")

    async def _canceled(self, ctx: RunContext, why: str) -> None:
        """End a run that never started: nothing begun left behind, the reason in its log
        before the terminal status (a client stops reading the log at that status)."""
        await self._discard_early(ctx)
        self.note(why)
        self.store.set_status(self.run_id, RunStatus.CANCELED, error=why)

    async def _start(self, backend: Backend, ctx: RunContext) -> RunHandle | None:
        record = self.store.get(self.run_id)
        if self.reattach and Capability.REATTACH in backend.declared:
            ref = record.durable_ref or ""
            self.note(f"supervisor restarted; reattaching to {ref or 'the run, by its label'}")
            try:
                # Counted, not only timed: a docker run read live through attach has its
                # lines stamped on arrival, not with the daemon's times (docker/run.py).
                point = await asyncio.to_thread(reattach_point, self.log.path)
                return await backend.reattach(ctx, ref, point)
            except LabdeckError as err:
                if not record.cancel_requested:
                    raise
                # Asked to stop, and there is nothing running to stop: that is a cancel.
                await self._canceled(ctx, f"canceled; {err}")
                return None
        if record.cancel_requested or record.status.is_terminal():
            await self._canceled(ctx, "canceled before start")
            return None
        self.store.set_status(self.run_id, RunStatus.PREPARING)
        for text in getattr(RunSpec.load(self.run_dir), "notes", []):  # a new run's only
            self.note(text)
        prepare = asyncio.create_task(backend.prepare(ctx, PrepareOptions()))
        cancel = asyncio.create_task(self.cancel_event.wait())
        await asyncio.wait({prepare, cancel}, return_when=asyncio.FIRST_COMPLETED)
        if not prepare.done():
            prepare.cancel()
            await self._canceled(ctx, "canceled while preparing")
            return None
        cancel.cancel()
        env = prepare.result()
        phasetrace.mark("sup-prepared")
        if self.cancel_event.is_set() or self._cancel_requested():
            await self._canceled(ctx, "canceled before start")
            return None
        handle = await backend.start(ctx, env)
        phasetrace.mark("sup-started")
        self.store.update(self.run_id, durable_ref=handle.durable_ref)
        self.store.set_status(self.run_id, RunStatus.RUNNING)
        phasetrace.mark("sup-running-recorded")
        return handle

    async def _follow(self, backend: Backend, handle: RunHandle) -> int:
        pump = asyncio.create_task(self._pump(handle))
        watcher = asyncio.create_task(self._watch_cancel(backend, handle))
        from .resources import sample_resources  # CPU/memory/GPU for the dashboard's details

        sampled = asyncio.Event()
        sampler = asyncio.create_task(sample_resources(self.run_id, handle, self.run_dir, sampled))
        reason: str | None = None
        try:
            code = await handle.wait()
        except ScriptFailed as err:  # ended like any failed run, outputs kept
            code, reason = err.run_exit_code, str(err)
        finally:  # never waited for: a sample in flight is dropped
            sampled.set()
            if not sampler.done():
                sampler.cancel()
            elif not sampler.cancelled() and sampler.result():
                self.note(str(sampler.result()))
        phasetrace.mark("sup-script-exited")
        self._ended = True
        try:
            await pump
        except Exception as err:  # the run ended all the same: keep its outputs and its status
            self.note(f"the log stream broke ({err}); lines after it may be missing")
        watcher.cancel()
        # CANCELED only when the cancel reached the script: one that came after its end (while
        # the log drains or outputs are collected) does not relabel what the script did.
        canceled = self._cancel_acted
        phasetrace.mark("sup-drained")
        outputs = await handle.collect_outputs(self.run_dir / "outputs")
        phasetrace.mark("sup-collected")
        # With a reason, no exit code is stored: it, not the log's last line, is why it failed.
        self.store.update(self.run_id, outputs=outputs, exit_code=None if reason else code)
        if canceled:
            status = RunStatus.CANCELED
        else:
            status = RunStatus.COMPLETED if code == 0 else RunStatus.FAILED
        if reason is not None and not canceled:
            self.note(f"error: {reason}")
        self.note(f"run {status.value}; exit code {code}; {len(outputs)} output file(s)")
        await self._close(handle)  # nothing of the run is left once its status is terminal
        error = (
            None
            if status is RunStatus.COMPLETED
            else ("canceled" if canceled else reason or f"exit code {code}")
        )
        phasetrace.mark("sup-closed")
        self.store.set_status(self.run_id, status, exit_code=None if reason else code,
                              error=error)
        phasetrace.mark("sup-terminal")
        return 0

    async def _pump(self, handle: RunHandle) -> None:
        """Each batch the handle read goes to the log file at once (a tail sees it), written
        with one join; only a batch holding a metric marker or a progress state is looked at
        line by line, and its metrics are stored in one transaction."""
        first = phasetrace.ENABLED
        async for batch in handle.logs():
            if first:
                first = False
                phasetrace.mark("sup-first-output")
            if isinstance(batch, RawBatch):  # plain bytes: a metric marker needs a look
                if _MARKER_B not in batch.block:
                    self.log.write_block(batch.stream, batch.block, batch.ts)
                    continue
            elif batch.stamps is None:
                text = "\n".join(batch.lines)
                if not any(mark in text for mark in _SLOW_PATH):
                    self.log.write_lines(batch.stream, batch.lines, batch.ts)
                    continue
            self._write_mixed(batch)

    def _write_mixed(self, batch: LogBatch) -> None:
        entries: list[tuple[str, str, float | None]] = []
        found: list[tuple[str, object, float | None]] = []
        stamps = batch.stamps or [batch.ts] * len(batch.lines)
        for text, ts in zip(batch.lines, stamps, strict=True):
            parsed = metrics.parse(text)
            if parsed is not None:
                name, value = parsed
                found.append((name, value, ts))
                entries.append(("met", f"{name} = {value}", ts))
            else:
                entries.append((batch.stream, text, ts))
        self.store.add_metrics(self.run_id, found)
        self.log.write_many(entries)

    def _cancel_requested(self) -> bool:
        return self.store.get(self.run_id, with_metrics=False).cancel_requested

    async def _watch_cancel(self, backend: Backend, handle: RunHandle) -> None:
        while not self.cancel_event.is_set():
            try:
                await asyncio.wait_for(self.cancel_event.wait(), CANCEL_POLL)
            except TimeoutError:
                if self._cancel_requested():
                    self.cancel_event.set()
        if self._ended:
            self.note("cancel requested after the script ended: nothing to stop")
            return
        if Capability.CANCEL not in backend.declared:
            self.note("this target cannot cancel a run; it goes on to its end")
            return
        self.note(f"cancel requested: SIGTERM, then SIGKILL after {CANCEL_GRACE:.0f}s")
        self._cancel_acted = True
        await handle.cancel(CANCEL_GRACE)


def main(argv: list[str], early: RunContext | None = None, done_fd: int | None = None) -> int:
    """``done_fd``: the write end of the client's "done" pipe, which this call then owns (it
    closes it when the run's status is final)."""
    if len(argv) < 2:
        print("usage: python -m backends.supervisor PROJECT RUN_ID [--reattach]", file=sys.stderr)
        return 2
    procutil.set_title(f"labdeck-supervisor {argv[1]}")  # ps -ef, pgrep -f labdeck-supervisor
    project = early.project if early is not None else Project(Path(argv[0]))
    supervisor = Supervisor(project, argv[1], reattach="--reattach" in argv[2:], early=early,
                            done_fd=done_fd)
    phasetrace.mark("sup-main")
    code = asyncio.run(supervisor.run())
    from .supervisor_end import drop_copy_if_ended

    drop_copy_if_ended(project, argv[1])
    if phasetrace.ENABLED:  # what the supervisor cost (its CPU time competes with the script's)
        usage = os.times()
        phasetrace.mark(f"sup-end(cpu {usage.user:.3f}u+{usage.system:.3f}s)")
    phasetrace.write("sup", fd=2)  # its stderr is the run's supervisor.log
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
