"""A small Docker Engine API client on asyncio streams: the run path's own.

A run's supervisor needs a dozen calls (inspect an image, create, start, follow the log, wait,
kill, remove, copy an archive in or out); importing aiodocker and aiohttp for them cost ~0.4 s of
a run's start (measured: ``python -X importtime``), more than the daemon takes to start the
container. This client is HTTP/1.1 over the daemon's unix socket (or ``tcp://``), JSON bodies,
chunked transfer decoding and the multiplexed stdout/stderr log frames; nothing else. Image builds
and ``target show`` keep using aiodocker (docker/client.py).

Sequential calls share one kept-alive connection; each long-lived stream (log follow, wait) gets
its own, since HTTP/1.1 without pipelining serves one request at a time.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing, asynccontextmanager
from typing import Any, BinaryIO, TypeVar

from .http import (
    HEADER_LIMIT,
    APIError,
    Response,
    attach_request,
    encode_chunk,
    encode_request,
    error_message,
    parse_url,
    read_response,
)

STDERR = 2  # the log frames' stream byte (1 is stdout)
PIPE_CHUNK = 1 << 20  # the most bytes in flight between a body's thread and the event loop
PIPE_DEPTH = 4  # chunks waiting to be sent, at most

T = TypeVar("T")


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class DockerAPI:
    def __init__(self, url: str):
        self.url = url
        self.scheme, self.address, self.port = parse_url(url)
        self._idle: list[Conn] = []

    # ------------------------------------------------------------------ connections

    async def _connect(self) -> Conn:
        if self.scheme == "unix":
            return await asyncio.open_unix_connection(self.address, limit=HEADER_LIMIT)
        return await asyncio.open_connection(self.address, self.port, limit=HEADER_LIMIT)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()

    async def __aenter__(self) -> DockerAPI:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _send(self, conn: Conn, request: bytes) -> Response:
        reader, writer = conn
        writer.write(request)
        await writer.drain()
        return await read_response(reader)

    async def _exchange(self, request: bytes) -> tuple[Response, Conn]:
        """Send on an idle connection (retried once on a fresh one if the daemon had closed it),
        else on a new one."""
        while self._idle:
            conn = self._idle.pop()
            try:
                return await self._send(conn, request), conn
            except (ConnectionError, asyncio.IncompleteReadError):
                conn[1].close()
        conn = await self._connect()
        try:
            return await self._send(conn, request), conn
        except BaseException:
            conn[1].close()
            raise

    # ------------------------------------------------------------------ requests

    async def call(self, method: str, path: str, params: Mapping[str, Any] | None = None,
                   body: Any = None, data: bytes | None = None,
                   content_type: str = "application/json") -> bytes:
        """One request; its body, or APIError for a status >= 400."""
        if body is not None:
            data = json.dumps(body).encode()
        response, conn = await self._exchange(encode_request(method, path, params, data,
                                                             content_type))
        return await self._finish(response, conn)

    async def _finish(self, response: Response, conn: Conn) -> bytes:
        """Read the body; keep the connection for the next call when the daemon allows."""
        try:
            payload = await response.read()
        except BaseException:
            conn[1].close()
            raise
        if response.complete and response.keep_alive:
            self._idle.append(conn)
        else:
            conn[1].close()
        if response.status >= 400:
            raise APIError(response.status, error_message(payload))
        return payload

    async def json(self, method: str, path: str, params: Mapping[str, Any] | None = None,
                   body: Any = None) -> Any:
        payload = await self.call(method, path, params, body)
        return json.loads(payload) if payload.strip() else None

    @asynccontextmanager
    async def stream(self, method: str, path: str,
                     params: Mapping[str, Any] | None = None) -> AsyncIterator[Response]:
        """A long-lived request on a connection of its own, closed on exit."""
        conn = await self._connect()
        try:
            response = await self._send(conn, encode_request(method, path, params, None, ""))
            if response.status >= 400:
                raise APIError(response.status, error_message(await response.read()))
            yield response
        finally:
            conn[1].close()

    # ------------------------------------------------------------------ the calls labdeck makes

    async def version(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.json("GET", "/version")
        return result

    async def image(self, ref: str) -> dict[str, Any] | None:
        """``docker image inspect``; None when there is no such image."""
        try:
            result: dict[str, Any] = await self.json("GET", f"/images/{ref}/json")
        except APIError as err:
            if err.status == 404:
                return None
            raise
        return result

    async def create(self, config: dict[str, Any], name: str | None = None) -> str:
        result = await self.json("POST", "/containers/create", {"name": name}, config)
        return str(result["Id"])

    async def start(self, cid: str) -> None:
        await self.call("POST", f"/containers/{cid}/start")

    async def finish(self, sock: socket.socket) -> bytes:
        """The answer to a request already sent on ``sock`` (docker/sync.py sends a container's
        start before the event loop exists); the connection is kept for the calls that follow."""
        if sock.family == socket.AF_UNIX:
            conn = await asyncio.open_unix_connection(sock=sock, limit=HEADER_LIMIT)
        else:
            conn = await asyncio.open_connection(sock=sock, limit=HEADER_LIMIT)
        try:
            response = await read_response(conn[0])
        except BaseException:
            conn[1].close()
            raise
        return await self._finish(response, conn)

    async def attach(self, cid: str) -> Attached:
        """The container's output from now on (``POST /containers/{id}/attach``) on a
        connection of its own: attach before the start and nothing is missed."""
        conn = await self._connect()
        try:
            response = await self._send(conn, attach_request(cid))
            if response.status >= 400:
                raise APIError(response.status, error_message(await response.read()))
        except BaseException:
            conn[1].close()
            raise
        return Attached(conn, response)

    async def adopt_attached(self, sock: socket.socket) -> Attached:
        """An attach the blocking client made before the event loop existed (docker/sync.py:
        its answer read, the stream not yet begun)."""
        if sock.family == socket.AF_UNIX:
            conn = await asyncio.open_unix_connection(sock=sock, limit=HEADER_LIMIT)
        else:
            conn = await asyncio.open_connection(sock=sock, limit=HEADER_LIMIT)
        return Attached(conn, Response(101, {}, conn[0]))

    async def inspect(self, cid: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.json("GET", f"/containers/{cid}/json")
        return result

    async def containers(self, labels: list[str], all: bool = True) -> list[dict[str, Any]]:
        filters = json.dumps({"label": labels})
        result: list[dict[str, Any]] = await self.json(
            "GET", "/containers/json", {"all": all, "filters": filters})
        return result

    async def kill(self, cid: str, signal: str) -> None:
        await self.call("POST", f"/containers/{cid}/kill", {"signal": signal})

    async def remove(self, cid: str) -> None:
        await self.call("DELETE", f"/containers/{cid}", {"force": True, "v": True})

    async def wait(self, cid: str) -> dict[str, Any]:
        """Blocks until the container is not running; ``{"StatusCode": n, "Error": ...}``."""
        async with self.stream("POST", f"/containers/{cid}/wait") as response:
            payload = await response.read()
        result: dict[str, Any] = json.loads(payload)
        return result

    async def put_archive(self, cid: str, path: str, write: Callable[[BinaryIO], None]) -> None:
        """Upload a tar that ``write`` produces into a file, in a thread, as it is produced:
        a chunked body, so neither the tar nor its size is ever needed whole."""
        request = encode_request("PUT", f"/containers/{cid}/archive", {"path": path},
                                 content_type="application/x-tar", chunked=True)
        await self.send_streamed(request, write)

    async def get_archive(self, cid: str, path: str, read: Callable[[BinaryIO], T]) -> T:
        """``read``'s result over the tar of ``path``, which it reads from a file, in a thread,
        as the daemon sends it (never held whole)."""
        async with self.stream("GET", f"/containers/{cid}/archive", {"path": path}) as response:
            return await read_in_thread(response.chunks(), read)

    async def send_streamed(self, request: bytes, write: Callable[[BinaryIO], None]) -> None:
        """``request`` (a head announcing a chunked body: encode_request(chunked=True)) sent
        with the body that ``write`` produces in a thread; APIError for a status >= 400."""
        async with aclosing(written_in_thread(write)) as chunks:
            await self.send_chunks(request, chunks)

    async def send_chunks(self, request: bytes, chunks: AsyncIterator[bytes]) -> bytes:
        """``request`` (a head announcing a chunked body) sent with ``chunks`` as its body, as
        they come (another daemon's stream, say); the answer's body, or APIError for a status
        >= 400."""
        conn = await self._connect()
        reader, writer = conn
        try:
            writer.write(request)
            try:
                async for chunk in chunks:
                    writer.write(encode_chunk(chunk))
                    await writer.drain()
                writer.write(encode_chunk(b""))
                await writer.drain()
            except ConnectionError:
                pass  # the daemon answered early (and closed): its answer says why
            response = await read_response(reader)
        except BaseException:
            writer.close()
            raise
        return await self._finish(response, conn)


class Attached:
    """An attach stream: the container's stdout and stderr frames (``frames()``) as it writes
    them, with no timestamps, until it ends; ``close()`` detaches."""

    def __init__(self, conn: Conn, response: Response):
        self.conn = conn
        self.response = response

    def frames(self) -> AsyncIterator[tuple[int, bytes]]:
        return self.response.frames()

    def close(self) -> None:
        self.conn[1].close()


class _PullReader(io.RawIOBase):
    """A file the thread reads, each read taking the next chunk from the event loop."""

    def __init__(self, pull: Callable[[], bytes]):
        self._pull = pull
        self._pending = memoryview(b"")
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._pending and not self._eof:
            self._pending = memoryview(self._pull())
            self._eof = not self._pending
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


async def read_in_thread(chunks: AsyncIterator[bytes], read: Callable[[BinaryIO], T]) -> T:
    """``read(file)`` in a thread, the file's bytes being ``chunks`` as they arrive: about
    PIPE_CHUNK at most is held at a time."""
    loop = asyncio.get_running_loop()
    done = False

    async def next_chunk() -> bytes:
        if done:  # the caller has gone: end the thread's reading
            raise ConnectionAbortedError("the archive stream was abandoned")
        data = bytearray()  # up to PIPE_CHUNK per crossing (the daemon sends ~32 KiB chunks)
        while len(data) < PIPE_CHUNK and (chunk := await anext(chunks, b"")):
            data += chunk
        return bytes(data)

    def pull() -> bytes:
        return asyncio.run_coroutine_threadsafe(next_chunk(), loop).result()

    try:
        return await asyncio.to_thread(read, io.BufferedReader(_PullReader(pull), PIPE_CHUNK))
    finally:
        done = True


class _PushWriter(io.RawIOBase):
    """A file the thread writes, each write handed to the event loop (waiting while the
    loop has ``PIPE_DEPTH`` chunks still to send)."""

    def __init__(self, push: Callable[[bytes], None]):
        self._push = push

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._push(bytes(data))
        return len(data)


async def written_in_thread(write: Callable[[BinaryIO], None]) -> AsyncGenerator[bytes, None]:
    """The bytes ``write(file)`` writes in a thread, in chunks of about PIPE_CHUNK, as it
    writes them; its exception, if it raises. Stopping early stops the writer."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(PIPE_DEPTH)
    stopped = False

    async def put(item: bytes | BaseException | None) -> None:
        if stopped:
            raise BrokenPipeError("the upload was abandoned")
        await queue.put(item)

    def push(item: bytes | BaseException | None) -> None:
        asyncio.run_coroutine_threadsafe(put(item), loop).result()

    def produce() -> None:
        try:
            with io.BufferedWriter(_PushWriter(push), PIPE_CHUNK) as file:
                write(file)
        except BaseException as err:  # handed over, to be raised where the bytes go
            if not stopped:
                push(err)
            return
        push(None)

    producer = loop.run_in_executor(None, produce)
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stopped = True
        while not queue.empty():  # a push waiting for room gets it, and then sees ``stopped``
            queue.get_nowait()
        await asyncio.shield(producer)


__all__ = ["STDERR", "APIError", "Attached", "DockerAPI", "Response", "parse_url"]
