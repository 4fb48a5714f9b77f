"""The run path's lean Engine API client (backends/docker/api.py) against a stand-in daemon on a
unix socket (HTTP/1.1 framing, chunked bodies, log frames, errors), and the imports of a run."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from backends.docker.api import APIError, DockerAPI, parse_url
from backends.docker.run import split_ts
from backends.errors import TargetError


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def chunked(body: bytes, sizes: list[int]) -> bytes:
    out, pos = b"", 0
    for size in sizes:
        out += f"{size:x}\r\n".encode() + body[pos:pos + size] + b"\r\n"
        pos += size
    if pos < len(body):
        out += f"{len(body) - pos:x}\r\n".encode() + body[pos:] + b"\r\n"
    return out + b"0\r\n\r\n"


async def serve(path: Path, answers: dict[str, bytes], seen: list[str]) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            length = 0
            while (header := await reader.readline()) not in (b"\r\n", b""):
                if header.lower().startswith(b"content-length:"):
                    length = int(header.split(b":")[1])
            await reader.readexactly(length)
            method, target, _ = line.decode().split(" ", 2)
            seen.append(f"{method} {target}")
            writer.write(answers[f"{method} {target.split('?')[0]}"])
            await writer.drain()
        writer.close()

    return await asyncio.start_unix_server(handle, str(path))


def test_requests_chunks_frames_and_errors(tmp_path: Path) -> None:
    sock = tmp_path / "d.sock"
    logs = (frame(1, b"2024-05-01T12:00:00.000000001Z caf\xc3") + frame(2, b"2024-05-01T12:00:00."
            b"5Z oops\n") + frame(1, b"2024-05-01T12:00:01Z \xa9\n"))
    answers = {
        "GET /images/lab/base:1/json": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                       b"Content-Length: 13\r\n\r\n{\"Id\": \"abc\"}",
        "GET /images/nope/json": b"HTTP/1.1 404 Not Found\r\nContent-Length: 28\r\n\r\n"
                                 b"{\"message\": \"no such image\"}",
        "POST /containers/c1/start": b"HTTP/1.1 204 No Content\r\n\r\n",
        "GET /containers/c1/logs": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   + chunked(logs, [5, 30, 1, 7]),
        "POST /containers/c1/kill": b"HTTP/1.1 409 Conflict\r\nContent-Length: 24\r\n\r\n"
                                    b"{\"message\": \"not runni\"}",
    }
    seen: list[str] = []

    async def main() -> None:
        server = await serve(sock, answers, seen)
        async with server, DockerAPI(f"unix://{sock}") as api:
            assert await api.image("lab/base:1") == {"Id": "abc"}
            assert await api.image("nope") is None
            await api.start("c1")
            with pytest.raises(APIError) as caught:
                await api.kill("c1", "SIGTERM")
            assert caught.value.status == 409 and caught.value.message == "not runni"
            async with api.stream("GET", "/containers/c1/logs", {"follow": True}) as response:
                got = [f async for f in response.frames()]
            assert [s for s, _ in got] == [1, 2, 1]
            stamp, body = split_ts(got[0][1])
            assert stamp == "2024-05-01T12:00:00.000000001Z " and body == b"caf\xc3"
            assert split_ts(b"no stamp") == ("", b"no stamp")

    asyncio.run(main())
    assert seen[:3] == ["GET /images/lab/base:1/json", "GET /images/nope/json",
                        "POST /containers/c1/start"]
    assert seen[-1] == "GET /containers/c1/logs?follow=1"


def test_blocking_client_then_the_loop_reads_the_start(tmp_path: Path) -> None:
    """docker/sync.py: JSON answers chunked or sized, a 404, a daemon error, and a start whose
    answer is read by the asyncio client on the same connection (DockerAPI.finish)."""
    from backends.docker.sync import SyncDockerAPI

    sock = tmp_path / "d.sock"
    body = b'{"Id": "base-id", "RepoTags": ["lab/base:1"]}'
    answers = {
        "GET /images/lab/base:1/json": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                       + chunked(body, [3, 20]),
        "GET /images/nope/json": b"HTTP/1.1 404 Not Found\r\nContent-Length: 28\r\n\r\n"
                                 b"{\"message\": \"no such image\"}",
        "POST /containers/create": b"HTTP/1.1 201 Created\r\nContent-Length: 12\r\n\r\n"
                                   b"{\"Id\": \"c9\"}",
        "DELETE /containers/c9": b"HTTP/1.1 500 Server Error\r\nContent-Length: 20\r\n\r\n"
                                 b"{\"message\": \"stuck\"}",
        "POST /containers/c9/start": b"HTTP/1.1 204 No Content\r\n\r\n",
        "GET /containers/c9/json": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    }
    seen: list[str] = []

    async def main() -> None:
        server = await serve(sock, answers, seen)
        async with server:
            def blocking() -> socket.socket:
                api = SyncDockerAPI(f"unix://{sock}")
                assert api.image("lab/base:1") == json.loads(body)
                assert api._sock is not None
                api._sock.shutdown(socket.SHUT_RDWR)  # the kept connection died while idle
                assert api.image("nope") is None  # asked again on a new one
                assert api.create({"Image": "x"}, name="run-1") == "c9"
                with pytest.raises(APIError, match="stuck"):
                    api.remove("c9")
                return api.send_start("c9")

            start_socket = await asyncio.to_thread(blocking)
            async with DockerAPI(f"unix://{sock}") as api:
                assert await api.finish(start_socket) == b""
                assert await api.inspect("c9") == {}  # the same kept-alive connection

    asyncio.run(main())
    assert seen == ["GET /images/lab/base:1/json", "GET /images/nope/json",
                    "POST /containers/create?name=run-1", "DELETE /containers/c9?force=1&v=1",
                    "POST /containers/c9/start", "GET /containers/c9/json"]


def test_urls() -> None:
    assert parse_url("unix:///var/run/docker.sock") == ("unix", "/var/run/docker.sock", 0)
    assert parse_url("tcp://127.0.0.1:2375") == ("tcp", "127.0.0.1", 2375)
    for bad in ("ssh://me@host", "npipe:////./pipe/docker_engine", "tcp://host:x"):
        with pytest.raises(TargetError, match="cannot use DOCKER_HOST"):
            parse_url(bad)


def test_a_run_imports_no_aiohttp() -> None:
    code = ("import sys, backends.engine, backends.supervisor, backends.docker.backend, "
            "backends.docker.run, backends.local; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'aiodocker')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2]).stdout
    assert out.strip() == "[]"


def test_mount_or_copy_and_the_container_user(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from backends.docker.plan import ContainerPlan
    from backends.project import Project as EngineProject

    (tmp_path / "aml_config").mkdir()
    (tmp_path / "aml_config" / "docker.compute").write_text('type: docker\nbaseDockerImage: "x"\n')
    compute = EngineProject(tmp_path).resolve("docker").compute
    sock = tmp_path / "docker.sock"
    sock.touch()
    monkeypatch.delenv("LABDECK_DOCKER_MOUNT", raising=False)
    assert ContainerPlan(compute, f"unix://{sock}").mounts()  # its socket is on this machine
    assert not ContainerPlan(compute, f"unix://{tmp_path}/gone.sock").mounts()
    assert not ContainerPlan(compute, "tcp://127.0.0.1:2375").mounts()
    monkeypatch.setenv("LABDECK_DOCKER_MOUNT", "0")
    assert not ContainerPlan(compute, f"unix://{sock}").mounts()
    monkeypatch.setenv("LABDECK_DOCKER_MOUNT", "1")
    assert ContainerPlan(compute, "tcp://127.0.0.1:2375").mounts()
    backend = ContainerPlan(compute, "unix:///var/run/docker.sock")
    real_uid = os.getuid()
    monkeypatch.setattr("os.getuid", lambda: 0)
    assert backend.user() is None  # root keeps the image's user
    monkeypatch.setattr("os.getuid", lambda: 4242)
    monkeypatch.setattr("os.getgid", lambda: 4343)
    assert backend.user() == "4242:4343"  # outputs/ on the host are the client's own
    if real_uid == 0:
        os.chown(sock, 4242, 4343)
        assert ContainerPlan(compute, f"unix://{sock}").user() is None  # a rootless daemon
