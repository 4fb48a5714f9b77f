"""One run in a container: its log (stdout and stderr apart, lines reassembled, resumable without
gap or duplicate), its exit code, cancel (SIGTERM, grace, SIGKILL), ``outputs/`` and removal."""

from __future__ import annotations

import asyncio
import calendar
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ..base import LogBatch, LogLine, RunHandle
from ..errors import TargetError
from ..linesplit import PROGRESS, LineSplitter
from ..logfile import ResumePoint, format_ts
from ..rawbatch import RawBatch, merged
from .api import STDERR, APIError, Attached, DockerAPI
from .client import api_message, docker_errors, is_not_found
from .early import take_attached
from .plan import WORKDIR

QUEUE_BATCHES = 10_000  # frames read but not yet written, at most (a frame is about a line)
_last_second: tuple[str, int] = ("", 0)  # most lines share their second with the one before


def docker_ts(stamp: str) -> float | None:
    """``"2024-05-01T12:34:56.123456789Z "`` (RFC3339Nano, as the logs endpoint prefixes each
    message) as seconds since the epoch, truncated to microseconds (what the log file keeps),
    so that a line's recorded timestamp never sorts after its real one: ``since`` then resends
    it. None for no stamp."""
    global _last_second
    whole, dot, rest = stamp.rstrip().rstrip("Z").partition(".")
    if len(whole) != 19:
        return None
    if whole != _last_second[0]:  # strptime costs more than all the rest of a line
        _last_second = (whole, calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")))
    micros = int(rest[:6].ljust(6, "0")) if dot and rest.isdigit() else 0
    return _last_second[1] + micros / 1_000_000


def since_param(log_ts: str) -> str:
    """A log file timestamp (microseconds) as the logs endpoint's ``since`` (seconds.nanos)."""
    whole, _, rest = log_ts.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return f"{seconds}.{rest[:6].ljust(6, '0')}000"


class LineAssembler:
    """Frames -> lines (linesplit.LineSplitter), each with the timestamp of the frame it began
    in. A frame is one log message; a long line arrives as several partial messages, and a frame
    may hold several lines. Progress states are throttled by the frames' own timestamps, so a
    stream resent on a reattach gives the same ones."""

    def __init__(self, stream: str):
        self.stream = stream
        self.splitter = LineSplitter()
        self.pending_ts: float | None = None  # when the unfinished line began

    def feed(self, stamp: str, body: bytes) -> list[LogLine]:
        """One message: its timestamp prefix (``split_ts``; "" when none) and its bytes."""
        ts = docker_ts(stamp) if stamp else None
        began = self.pending_ts if self.splitter.pending() else ts
        lines = []
        for text in self.splitter.feed(body, time.monotonic() if ts is None else ts):
            if text[:1] == PROGRESS:
                lines.append(LogLine(self.stream, text, ts))
            else:
                lines.append(LogLine(self.stream, text, began))
                began = ts
        self.pending_ts = began if self.splitter.pending() else None
        return lines

    def flush(self) -> list[LogLine]:
        lines = [LogLine(self.stream, text, self.pending_ts) for text in self.splitter.flush()]
        self.pending_ts = None
        return lines


class Deduper:
    """Drops what a reattached stream resends: lines before the resume point, and the first
    ``count`` lines carrying exactly its timestamp (those were already written). With
    ``by_count``, timestamps say nothing (the log's were stamped on arrival, not by the
    daemon): the first ``count`` lines of the stream, resent from its start, are dropped, and
    the progress states among them."""

    def __init__(self, last_ts: str | None, count: int, by_count: bool = False):
        self.last_ts = last_ts
        self.to_skip = count
        self.by_count = by_count

    def keep(self, line: LogLine) -> bool:
        if self.by_count:
            if self.to_skip <= 0:
                return True
            if line.text[:1] != PROGRESS:  # a passing state of a line already written
                self.to_skip -= 1
            return False
        if self.last_ts is None or line.ts is None:
            return True
        stamp = format_ts(line.ts)
        if line.text[:1] == PROGRESS:  # a passing state: not counted in the resume point
            return stamp > self.last_ts
        if stamp < self.last_ts:
            return False
        if stamp == self.last_ts and self.to_skip > 0:
            self.to_skip -= 1
            return False
        self.last_ts = None  # past the resume point: keep everything from here
        return True


class DockerRunHandle(RunHandle):
    """A started container, driven through the lean client (docker/api.py).

    ``outputs`` says where ``outputs/`` is read back from: ``("move", path)`` when the snapshot
    is bind-mounted (a local daemon: the run wrote straight into it), ``("copy", path)`` with
    sharedVolumes (the project's own outputs/), or None: copied out of the container."""

    def __init__(self, api: DockerAPI, cid: str, resume: ResumePoint | None = None,
                 outputs: tuple[str, Path] | None = None, attached: Attached | None = None):
        self.api = api
        self.url = api.url
        self.durable_ref = cid
        self.resume = resume
        self.outputs = outputs
        self._queue: asyncio.Queue[LogBatch | None] | None = None
        self._wait: asyncio.Task[int] | None = None
        # A new run's output stream, attached before its start (docker/early.py); else (a
        # reattach, a start without it) the logs endpoint.
        self._attached: Attached | socket.socket | None = attached
        if attached is None and resume is None:
            self._attached = take_attached(cid)

    def pending_lines(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def logs(self) -> AsyncIterator[LogBatch]:
        queue: asyncio.Queue[LogBatch | None] = asyncio.Queue(maxsize=QUEUE_BATCHES)
        self._queue = queue
        attached, self._attached = self._attached, None
        reader = asyncio.create_task(self._pump(queue) if attached is None
                                     else self._pump_attached(queue, attached))
        try:
            while (item := await queue.get()) is not None:
                # The frames already read go with it, a stream's in a row as one batch.
                while not queue.empty():
                    nxt = queue.get_nowait()
                    if nxt is None:
                        queue.put_nowait(None)  # the end, after what is in hand
                        break
                    if (both := merged(item, nxt)) is not None:
                        item = both
                    else:
                        yield item
                        item = nxt
                yield item
        finally:
            reader.cancel()
            if reader.done() and not reader.cancelled() and reader.exception() is not None:
                raise TargetError(f"log stream failed: {reader.exception()}")

    async def _pump_attached(self, queue: asyncio.Queue[LogBatch | None],
                             source: Attached | socket.socket) -> None:
        """The attach stream: frames as the container writes them, no timestamps (each read's
        lines are stamped on arrival, one batch each: the supervisor's fast path). The log
        then holds arrival times, which is why a reattach resumes by line counts. Plain frames
        travel as bytes (``RawBatch``: no ``str`` per line), the rest line by line."""
        assemblers = {"out": LineAssembler("out"), "err": LineAssembler("err")}
        try:
            with docker_errors(self.url):
                attached = (await self.api.adopt_attached(source)
                            if isinstance(source, socket.socket) else source)
                try:
                    async for kind, payload in attached.frames():
                        name = "err" if kind == STDERR else "out"
                        block = assemblers[name].splitter.feed_block(payload)
                        if block is not None:
                            if block:
                                await queue.put(RawBatch(name, block, time.time()))
                        elif lines := assemblers[name].feed("", payload):
                            await queue.put(LogBatch(name, [line.text for line in lines],
                                                     time.time()))
                finally:
                    attached.close()
            for name, assembler in assemblers.items():
                if lines := assembler.flush():
                    await queue.put(LogBatch(name, [line.text for line in lines], time.time()))
        finally:
            await queue.put(None)

    async def _pump(self, queue: asyncio.Queue[LogBatch | None]) -> None:
        """One follow request for both streams: each frame says whether it is stdout or stderr.
        On a resume, ``since`` is the earlier of the two resume points (or none when a stream
        has none yet) and each stream drops what it already wrote; with the log's line counts
        (``ResumePoint.lines``) the whole log is resent and each stream drops that many."""
        params: dict[str, Any] = {"follow": True, "timestamps": True, "stdout": True,
                                  "stderr": True}
        resume = self.resume
        dedupe = {"out": Deduper(None, 0), "err": Deduper(None, 0)}
        if resume is not None and resume.lines is not None:
            dedupe = {name: Deduper(None, resume.lines.get(name, 0), by_count=True)
                      for name in dedupe}
        elif resume is not None and resume.last_ts:
            for name in dedupe:
                if name in resume.last_ts:
                    dedupe[name] = Deduper(resume.last_ts[name],
                                           resume.count_at_last.get(name, 0))
            if all(name in resume.last_ts for name in dedupe):
                params["since"] = since_param(min(resume.last_ts.values()))
        try:
            with docker_errors(self.url):
                if resume is None or resume.lines is None:
                    await self._read_logs(params, dedupe, queue)
                    return
                # The whole log resent: the daemon may end a follow that began that far back
                # when the container stops, before it has sent it all (seen with 300,000
                # lines). Once the container has ended, the rest is read again without
                # follow, past every line seen (given out, or dropped as already written).
                seen = await self._read_logs(params, dedupe, queue, counting=True)
                await self.wait()
                params["follow"] = False
                again = {name: Deduper(None, max(seen[name], resume.lines.get(name, 0)),
                                       by_count=True) for name in dedupe}
                await self._read_logs(params, again, queue)
        finally:
            await queue.put(None)

    async def _read_logs(self, params: dict[str, Any], dedupe: dict[str, Deduper],
                         queue: asyncio.Queue[LogBatch | None],
                         counting: bool = False) -> dict[str, int]:
        """One logs request, each stream's lines through its Deduper. With ``counting``, how
        many lines each stream sent (progress states aside), and an unfinished last line is
        left for the next request; else it is given out at the end."""
        assemblers = {"out": LineAssembler("out"), "err": LineAssembler("err")}
        seen = {"out": 0, "err": 0}
        async with self.api.stream("GET", f"/containers/{self.durable_ref}/logs",
                                   params) as response:
            async for kind, payload in response.frames():
                name = "err" if kind == STDERR else "out"
                stamp, body = split_ts(payload)
                lines = assemblers[name].feed(stamp, body)
                if counting:
                    seen[name] += sum(1 for line in lines if line.text[:1] != PROGRESS)
                await _put(queue, name, lines, dedupe[name])
        if not counting:
            for name, assembler in assemblers.items():
                await _put(queue, name, assembler.flush(), dedupe[name])
        return seen

    async def _wait_once(self) -> int:
        try:
            with docker_errors(self.url):
                result = await self.api.wait(self.durable_ref)
        except APIError as err:
            raise TargetError(f"waiting for the container failed: {api_message(err)}") from err
        error = (result.get("Error") or {}).get("Message") if isinstance(result, dict) else None
        if error:
            raise TargetError(f"waiting for the container failed: {error}")
        return int(result.get("StatusCode", -1))

    async def wait(self) -> int:
        if self._wait is None:
            self._wait = asyncio.create_task(self._wait_once())
        return await asyncio.shield(self._wait)

    async def cancel(self, grace: float) -> None:
        if not await self._signal("SIGTERM"):
            return
        try:
            await asyncio.wait_for(self.wait(), grace)
        except TimeoutError:
            await self._signal("SIGKILL")

    async def _signal(self, name: str) -> bool:
        """Send a signal; False when the container is no longer running."""
        try:
            with docker_errors(self.url):
                await self.api.kill(self.durable_ref, name)
        except APIError as err:
            if err.status in (404, 409):  # gone, or not running
                return False
            raise TargetError(f"cannot signal the container: {api_message(err)}") from err
        return True

    async def collect_outputs(self, dest: Path) -> list[str]:
        from ..outputs import collect_outputs_dir, extract_tar  # at the run's end only

        if self.outputs is not None:
            how, src = self.outputs
            if how == "move":  # renames only, and nothing else runs now: no thread needed
                return collect_outputs_dir(src, dest, True)
            return await asyncio.to_thread(collect_outputs_dir, src, dest, False)
        try:
            with docker_errors(self.url):
                # Read as the daemon sends it: a multi-GB checkpoint is never held in memory.
                return await self.api.get_archive(self.durable_ref, f"{WORKDIR}/outputs",
                                                  lambda stream: extract_tar(stream, dest))
        except APIError as err:
            if is_not_found(err):
                return []
            raise TargetError(f"cannot copy outputs/ out of the container: "
                              f"{api_message(err)}") from err

    async def close(self) -> None:
        """Remove the container (it has ended, or the run is being given up)."""
        try:
            await remove_container(self.api, self.durable_ref)
        finally:
            await self.api.close()


async def remove_container(api: DockerAPI, cid: str) -> None:
    """``docker rm -f -v``; a container already gone is fine."""
    try:
        with docker_errors(api.url):
            await api.remove(cid)
    except APIError as err:
        if not is_not_found(err):
            raise TargetError(f"cannot remove container {cid[:12]}: {api_message(err)}") from err


async def _put(queue: asyncio.Queue[LogBatch | None], stream: str, lines: list[LogLine],
               dedupe: Deduper) -> None:
    kept = [line for line in lines if dedupe.keep(line)]
    if kept:
        await queue.put(LogBatch(stream, [line.text for line in kept],
                                 stamps=[line.ts for line in kept]))


def split_ts(payload: bytes) -> tuple[str, bytes]:
    """``b"2024-05-01T12:34:56.123456789Z text"`` -> ``("2024-...Z ", b"text")``: the timestamp
    apart, so a character split across two frames is decoded whole."""
    cut = payload.find(b"Z ", 0, 40)
    if cut > 18 and payload[:4].isdigit():
        return payload[:cut + 2].decode("ascii", "replace"), payload[cut + 2:]
    return "", payload
