"""The supervisor of a plain local run begun early (localstart.py), without asyncio.

A local run begun the moment it arrived needs no event loop: two pipes and the script's exit (a
pidfd) are polled in one loop here, the same steps and records as ``supervisor.Supervisor``
(statuses, notes, the log and its metrics, cancel by the store flag or SIGTERM: SIGTERM to the
tree, SIGKILL after the grace; leftovers of the script stopped; outputs collected; the client's
done pipe closed once the status is final). asyncio and the backend's module are never loaded:
they were most of a short run's supervisor start (and CPU time taken from the script).
Every other run (docker, PySpark, sharedVolumes, reattach, the zygote's and the exec'd
supervisors) goes through ``supervisor.py``.
"""

from __future__ import annotations

import os
import select
import signal
import time

from . import metrics, phasetrace, procutil
from .base import Capability, RunContext
from .errors import LabdeckError
from .linesplit import PROGRESS, LineSplitter
from .localstart import LocalProcess
from .logfile import LogWriter
from .runspec import RunSpec
from .status import RunStatus
from .store import RunStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .samplerthread import SamplerThread

CANCEL_GRACE = 3.0
CANCEL_POLL = 0.5
SAMPLE_AFTER_S = 1.0
READ_CHUNK = 1 << 20
# A read this big (a script's output buffer, flushed when full) means more follows at once:
# wait a little before the next one, so that a flood is read, split and logged in large blocks
# (a few hundred system calls per million lines instead of tens of thousands) while the pipe
# (1 MiB) holds what comes meanwhile. Output that trickles is read the moment it is there.
FLOOD_READ = 8 << 10
FLOOD_GATHER_S = 0.005
CAPABILITIES = sorted(c.value for c in (Capability.CANCEL, Capability.LIVE_METRICS))
_MARKER_B = metrics.MARKER[:1].encode()
_SLOW = (metrics.MARKER[:1], PROGRESS)


def takes(ctx: RunContext | None) -> bool:
    """Whether this supervisor runs ``ctx``: a run whose script localstart.py began."""
    return ctx is not None and isinstance(ctx.early, LocalProcess) and hasattr(os, "pidfd_open")


class SyncSupervisor:
    def __init__(self, ctx: RunContext, done_fd: int | None):
        assert isinstance(ctx.early, LocalProcess)
        self.ctx = ctx
        self.proc: LocalProcess = ctx.early
        self.run_id = ctx.run_id
        self.run_dir = ctx.run_dir
        self.done_fd = done_fd
        self.store = RunStore(ctx.project.db_path)
        self.log = LogWriter(self.run_dir / "log")
        self.cancel_signaled = False
        self.code: int | None = None  # the script's exit code, once reaped
        # Resource samples (the dashboard's sparklines): a thread started once the run has
        # lasted SAMPLE_AFTER_S, so that a short run's supervisor starts none.
        self.sampler: SamplerThread | None = None

    def note(self, text: str) -> None:
        self.log.write("sys", text)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.cancel_signaled = True

    def run(self) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)  # a signal wakes the poll below
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        phasetrace.mark("sup-loop")
        try:
            self.store.update(self.run_id, capabilities=CAPABILITIES)
            if self._start():
                try:
                    self._follow(wake_r)
                finally:
                    if self.sampler is not None:
                        why = self.sampler.stop()
                        if why:
                            self.note(why)
            return 0
        except LabdeckError as err:
            self._kill()
            self.note(f"error: {err}")
            self.store.set_status(self.run_id, RunStatus.FAILED, error=str(err))
            return 1
        except Exception as err:  # the record must end terminal whatever broke
            import traceback  # (2 ms of imports: only for a bug)

            self._kill()
            self.note(f"internal error: {err!r}")
            (self.run_dir / "supervisor-traceback.txt").write_text(traceback.format_exc())
            self.store.set_status(self.run_id, RunStatus.FAILED,
                                  error=f"internal error: {err!r}")
            return 1
        finally:
            self.proc.close_pipes()
            signal.set_wakeup_fd(-1)
            os.close(wake_r)
            os.close(wake_w)
            self.log.close()
            self.store.close()
            if self.done_fd is not None:
                os.close(self.done_fd)
                self.done_fd = None

    def _kill(self) -> None:
        """The script's whole tree, at once (a run that does not go on)."""
        if self.code is None:
            self.proc.discard()
            self.code = -signal.SIGKILL

    def _canceled(self, why: str) -> None:
        self._kill()
        self.note(why)
        self.store.set_status(self.run_id, RunStatus.CANCELED, error=why)

    def _cancel_requested(self) -> bool:
        return self.store.get(self.run_id, with_metrics=False).cancel_requested

    def _start(self) -> bool:
        record = self.store.get(self.run_id)
        if record.cancel_requested or record.status.is_terminal() or self.cancel_signaled:
            self._canceled("canceled before start")
            return False
        self.store.set_status(self.run_id, RunStatus.PREPARING)
        for text in getattr(RunSpec.load(self.run_dir), "notes", []):
            self.note(text)
        phasetrace.mark("sup-prepared")
        if self.cancel_signaled or self._cancel_requested():
            self._canceled("canceled before start")
            return False
        phasetrace.mark("sup-started")
        self.store.update(self.run_id, durable_ref=f"pid:{self.proc.pid}")
        self.store.set_status(self.run_id, RunStatus.RUNNING)
        phasetrace.mark("sup-running-recorded")
        return True

    def _follow(self, wake_r: int) -> None:
        pid = self.proc.pid
        pidfd = os.pidfd_open(pid)
        streams = {self.proc.out_fd: ("out", LineSplitter()), self.proc.err_fd: ("err",
                                                                                  LineSplitter())}
        poller = select.poll()
        for fd in (*streams, pidfd, wake_r):
            poller.register(fd, select.POLLIN)
        cancel_acted = False
        cancel_seen = False
        kill_at: float | None = None
        next_check = time.monotonic() + CANCEL_POLL
        sample_at = time.monotonic() + SAMPLE_AFTER_S
        first = phasetrace.ENABLED
        flooding = False
        try:
            while streams or self.code is None:
                now = time.monotonic()
                wake = [next_check] + [d for _n, s in streams.values()
                                       if (d := s.due()) is not None]
                if kill_at is not None and self.code is None:
                    wake.append(kill_at)
                timeout = max(0.0, min(wake) - now)
                if flooding:  # let a flood gather: one read and one log write per ~5 ms
                    time.sleep(FLOOD_GATHER_S)
                flooding = False
                for fd, _event in poller.poll(timeout * 1000 + 1):
                    if fd in streams:
                        chunk = _read(fd)
                        if chunk is None:
                            continue
                        if first and chunk:
                            first = False
                            phasetrace.mark("sup-first-output")
                        name, splitter = streams[fd]
                        flooding = flooding or len(chunk) >= FLOOD_READ
                        if chunk:
                            self._feed(name, splitter, chunk)
                        else:  # EOF: the stream's last, unfinished line
                            self._write(name, splitter.flush())
                            poller.unregister(fd)
                            del streams[fd]
                    elif fd == pidfd:
                        poller.unregister(pidfd)
                        self.code = _reap(pid)
                        phasetrace.mark("sup-script-exited")
                        # Leftovers (daemons, double forks) would hold the pipes open and
                        # outlive the run: stopped too. We are their subreaper.
                        if cancel_acted or _children_besides(pid) != []:
                            self._stop_leftovers(1.0 if cancel_acted else 2.0)
                    elif fd == wake_r:
                        _drain(wake_r)
                now = time.monotonic()
                for name, splitter in streams.values():
                    due = splitter.due()
                    if due is not None and due <= now:
                        self._write(name, splitter.tick(now))
                if now >= next_check:
                    next_check = now + CANCEL_POLL
                    if self.sampler is None and self.code is None and now >= sample_at:
                        from .samplerthread import SamplerThread

                        self.sampler = SamplerThread(self.run_id, pid, self.run_dir, first=0)
                    if not cancel_seen and self._cancel_requested():
                        self.cancel_signaled = True
                if self.cancel_signaled and not cancel_seen:
                    cancel_seen = True
                    if self.code is not None:
                        self.note("cancel requested after the script ended: nothing to stop")
                    else:
                        self.note(f"cancel requested: SIGTERM, then SIGKILL after "
                                  f"{CANCEL_GRACE:.0f}s")
                        cancel_acted = True
                        procutil.signal_tree(pid, [pid, *self._leftovers()], signal.SIGTERM)
                        kill_at = now + CANCEL_GRACE
                if kill_at is not None and self.code is None and now >= kill_at:
                    kill_at = None
                    left = [p for p in [pid, *self._leftovers()] if procutil.alive(p)]
                    procutil.signal_tree(pid, left, signal.SIGKILL)
        finally:
            os.close(pidfd)
        phasetrace.mark("sup-drained")
        self._finish(cancel_acted)

    def _leftovers(self) -> list[int]:
        return procutil.leftovers(self.proc.pid)

    def _stop_leftovers(self, grace: float) -> None:
        procutil.stop_leftovers(self.proc.pid, grace)

    def _feed(self, name: str, splitter: LineSplitter, chunk: bytes) -> None:
        block = splitter.feed_block(chunk)
        if block is None:
            self._write(name, splitter.feed(chunk, time.monotonic()))
        elif block:
            if _MARKER_B not in block:
                self.log.write_block(name, block)
            else:
                self._write(name, block[:-1].decode("utf-8").split("\n"))

    def _write(self, stream: str, lines: list[str]) -> None:
        """Lines of one read: plain ones with one join; with a metric or a progress state,
        line by line (its metrics stored in one transaction)."""
        if not lines:
            return
        if not any(mark in line for line in lines for mark in _SLOW):
            self.log.write_lines(stream, lines)
            return
        now = time.time()
        entries: list[tuple[str, str, float | None]] = []
        found: list[tuple[str, object, float | None]] = []
        for text in lines:
            parsed = metrics.parse(text)
            if parsed is not None:
                name, value = parsed
                found.append((name, value, now))
                entries.append(("met", f"{name} = {value}", now))
            else:
                entries.append((stream, text, now))
        self.store.add_metrics(self.run_id, found)
        self.log.write_many(entries)

    def _finish(self, canceled: bool) -> None:
        code = self.code if self.code is not None else -signal.SIGKILL
        outputs = _collect(self.ctx)
        phasetrace.mark("sup-collected")
        self.store.update(self.run_id, outputs=outputs, exit_code=code)
        if canceled:
            status = RunStatus.CANCELED
        else:
            status = RunStatus.COMPLETED if code == 0 else RunStatus.FAILED
        self.note(f"run {status.value}; exit code {code}; {len(outputs)} output file(s)")
        error = (None if status is RunStatus.COMPLETED
                 else ("canceled" if canceled else f"exit code {code}"))
        phasetrace.mark("sup-closed")
        self.store.set_status(self.run_id, status, exit_code=code, error=error)
        phasetrace.mark("sup-terminal")


def _read(fd: int) -> bytes | None:
    try:
        return os.read(fd, READ_CHUNK)
    except BlockingIOError:
        return None


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _reap(pid: int) -> int:
    try:
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    except ChildProcessError:  # reaped by someone else: its code is lost
        return 255


def _children_besides(pid: int) -> list[int] | None:
    """This process's children other than ``pid``; None when the kernel does not list them."""
    found: list[int] = []
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as fh:
                found += [int(p) for p in fh.read().split() if int(p) != pid]
    except (OSError, ValueError):
        return None
    return found


def _collect(ctx: RunContext) -> list[str]:
    """The run's outputs/ moved into its run folder (a snapshot's: the run's alone)."""
    src = ctx.workdir / "outputs"
    try:
        with os.scandir(src) as entries:
            if next(entries, None) is None:
                return []
    except FileNotFoundError:
        return []
    from .outputs import collect_outputs_dir

    return collect_outputs_dir(src, ctx.run_dir / "outputs", True)


def main(ctx: RunContext, done_fd: int | None = None) -> int:
    """Supervise ``ctx`` (``takes(ctx)``) to its end; ``done_fd`` as in supervisor.main."""
    procutil.set_title(f"labdeck-supervisor {ctx.run_id}")
    phasetrace.mark("sup-main")
    code = SyncSupervisor(ctx, done_fd).run()
    from .supervisor_end import drop_copy_if_ended

    drop_copy_if_ended(ctx.project, ctx.run_id)
    if phasetrace.ENABLED:
        usage = os.times()
        phasetrace.mark(f"sup-end(cpu {usage.user:.3f}u+{usage.system:.3f}s)")
    phasetrace.write("sup", fd=2)
    return code
