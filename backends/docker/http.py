"""The Engine API's HTTP/1.1: addresses, requests, responses (heads, bodies, log frames), errors.

One parser for both clients: the asyncio one (docker/api.py) reads through asyncio's StreamReader,
the blocking one that starts a container before the supervisor's event loop exists
(docker/sync.py) through a BlockingReader. Importing this module loads no asyncio.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Coroutine, Mapping
from urllib.parse import quote, urlencode

from ..errors import TargetError

TYPE_CHECKING = False  # importing typing costs ~3 ms of a submit; annotations need none
if TYPE_CHECKING:
    from io import BufferedReader
    from typing import Any, Protocol, TypeVar

    T = TypeVar("T")

    class Reader(Protocol):
        """What Response reads through: asyncio's StreamReader, or a BlockingReader."""

        async def readline(self) -> bytes: ...

        async def readexactly(self, size: int) -> bytes: ...

        async def read(self, size: int = -1) -> bytes: ...

HEADER_LIMIT = 1 << 16


class APIError(Exception):
    """The daemon answered with an error status; ``message`` is its own message."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def parse_url(url: str) -> tuple[str, str, int]:
    """``unix:///path`` -> ("unix", path, 0); ``tcp://host:port`` -> ("tcp", host, port)."""
    if url.startswith("unix://"):
        path = url[len("unix://"):]
        if not path:
            raise TargetError(f"cannot use DOCKER_HOST={url!r}: no socket path")
        return "unix", path, 0
    if url.startswith(("tcp://", "http://")):
        if os.environ.get("DOCKER_TLS_VERIFY"):
            raise TargetError(f"cannot use DOCKER_HOST={url!r} with DOCKER_TLS_VERIFY: labdeck "
                              "speaks plain TCP or a unix socket (forward the socket over SSH)")
        rest = url.split("://", 1)[1].rstrip("/")
        host, _, port = rest.rpartition(":")
        if not host:
            host, port = rest, "2375"
        try:
            return "tcp", host.strip("[]"), int(port)
        except ValueError:
            raise TargetError(f"cannot use DOCKER_HOST={url!r}: bad port {port!r}") from None
    raise TargetError(f"cannot use DOCKER_HOST={url!r}: labdeck reaches a daemon through "
                      "unix:///path/to/docker.sock or tcp://HOST:PORT (for ssh://, forward the "
                      "socket: ssh -L /tmp/docker.sock:/var/run/docker.sock HOST)")


def encode_request(method: str, path: str, params: Mapping[str, Any] | None = None,
                   body: bytes | None = None, content_type: str = "application/json",
                   chunked: bool = False, upgrade: bool = False) -> bytes:
    """The request's head (and ``body``); with ``chunked`` the head only, announcing a body
    that the caller streams in chunks after it (``encode_chunk``); with ``upgrade`` asking the
    daemon to hand the connection over to the stream (attach: ``101 UPGRADED``)."""
    target = quote(path, safe="/:@!$&'()*+,;=-._~")
    if params:
        query = {k: _param(v) for k, v in params.items() if v is not None}
        target += "?" + urlencode(query)
    head = [f"{method} {target} HTTP/1.1", "Host: docker", "User-Agent: labdeck"]
    if upgrade:
        head += ["Connection: Upgrade", "Upgrade: tcp"]
    if chunked:
        head += [f"Content-Type: {content_type}", "Transfer-Encoding: chunked"]
    elif body is not None:
        head += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    elif method in ("POST", "PUT"):
        head.append("Content-Length: 0")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")


def encode_chunk(data: bytes) -> bytes:
    """One piece of a chunked body; ``b""`` encodes its end."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def parse_status(line: bytes) -> int:
    """The status code of ``HTTP/1.1 201 Created``."""
    if not line:
        raise ConnectionResetError("the Docker daemon closed the connection")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise ConnectionError(f"not an HTTP answer from the Docker daemon: {line!r}")
    return int(parts[1])


def is_end_of_head(line: bytes) -> bool:
    return line in (b"\r\n", b"\n", b"")


def add_header(headers: dict[str, str], line: bytes) -> None:
    name, _, value = line.decode("latin-1").partition(":")
    headers[name.strip().lower()] = value.strip()


def chunk_size(line: bytes) -> int:
    """The size line of a chunked body (``1a3;ext``)."""
    if not line:
        raise ConnectionResetError("the Docker daemon closed the connection")
    return int(line.split(b";", 1)[0].strip() or b"0", 16)


def body_kind(status: int, headers: dict[str, str]) -> str:
    """How the body is framed: "chunked", "length", "none" or "close" (ends with the connection)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return "chunked"
    if "content-length" in headers:
        return "length"
    if status == 101:  # upgraded (attach): the stream is the connection, to its end
        return "close"
    if status in (204, 304) or 100 <= status < 200:
        return "none"
    return "close"


def error_message(payload: bytes) -> str:
    """The daemon's own message out of an error body (``{"message": ...}``), else the text."""
    text = payload.decode(errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict) and "message" in data:
        return str(data["message"])
    return text


class Response:
    """Status and headers of one response; its body read as it arrives, transfer encoding
    removed. The reader is asyncio's StreamReader, or a BlockingReader (docker/sync.py)."""

    def __init__(self, status: int, headers: dict[str, str], reader: Reader):
        self.status = status
        self.headers = headers
        self._reader = reader
        self.complete = False  # the body has been read to its end (the connection is reusable)

    @property
    def keep_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close"

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, transfer encoding removed."""
        reader = self._reader
        kind = body_kind(self.status, self.headers)
        if kind == "chunked":
            while size := chunk_size(await reader.readline()):
                data = await reader.readexactly(size)
                await reader.readexactly(2)
                yield data
            while not is_end_of_head(await reader.readline()):
                pass  # trailers
        elif kind == "length":
            left = int(self.headers["content-length"])
            while left > 0:
                data = await reader.read(min(left, 1 << 16))
                if not data:
                    raise ConnectionResetError("the Docker daemon closed the connection")
                left -= len(data)
                yield data
        elif kind == "close":
            self.headers["connection"] = "close"
            while data := await reader.read(1 << 16):
                yield data
        self.complete = True

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def frames(self) -> AsyncIterator[tuple[int, bytes]]:
        """The multiplexed log format: ``(stream, payload)``, stream 1 = stdout, 2 = stderr."""
        buf = bytearray()
        async for chunk in self.chunks():
            buf += chunk
            while len(buf) >= 8:
                size = int.from_bytes(buf[4:8], "big")
                if len(buf) < 8 + size:
                    break
                stream = buf[0]
                payload = bytes(buf[8:8 + size])
                del buf[:8 + size]
                yield stream, payload


async def read_response(reader: Reader) -> Response:
    """The status line and the headers; the body is left to ``Response``."""
    status = parse_status(await reader.readline())
    headers: dict[str, str] = {}
    while not is_end_of_head(line := await reader.readline()):
        add_header(headers, line)
    return Response(status, headers, reader)


ATTACH_PARAMS = {"stream": True, "stdout": True, "stderr": True}


def attach_request(cid: str) -> bytes:
    """``POST /containers/{id}/attach``: both streams, multiplexed, from now on; the daemon
    attaches them before it answers, so a start sent after the answer misses nothing."""
    return encode_request("POST", f"/containers/{cid}/attach", ATTACH_PARAMS, upgrade=True)


class BlockingReader:
    """StreamReader's reading methods over a blocking socket's file, for the client that runs
    before asyncio is loaded: its awaits never suspend, so ``run_blocking`` runs ``Response``'s
    coroutines to their end. One parser serves both clients."""

    def __init__(self, file: BufferedReader):
        self._file = file

    async def readline(self) -> bytes:
        return self._file.readline(HEADER_LIMIT)

    async def readexactly(self, size: int) -> bytes:
        data = self._file.read(size)
        if len(data) < size:
            raise ConnectionResetError("the Docker daemon closed the connection")
        return data

    async def read(self, size: int = -1) -> bytes:
        return self._file.read1(size)

    def close(self) -> None:
        self._file.close()


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends (it awaits only a BlockingReader)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coroutine.close()
    raise RuntimeError("a blocking read suspended")


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)
