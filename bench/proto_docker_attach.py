"""The two ways to read a container's output, without labdeck around them (issue 13, item 3:
the prototype that chose the attach stream, now DockerRunHandle's live path): through the
attach stream (attached before the start, so nothing is missed) vs the logs endpoint (follow,
timestamps: what a reattach reads), each split and written to a log file as the supervisor
does, vs ``docker run ... > file``; alternating rounds, medians.

Usage: python bench/proto_docker_attach.py [ROUNDS] [LINES]
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import DOCKER_IMAGE, REPO

from backends.docker.api import DockerAPI
from backends.docker.http import read_response
from backends.linesplit import LineSplitter
from backends.logfile import LogWriter

SOCKET = "/var/run/docker.sock"
SPAM = """import sys
n = int(sys.argv[1])
for i in range(n):
    print(f"epoch {i // 10000} step {i} loss={1 / (i + 1):.6f}")
"""
NAMES = {1: "out", 2: "err"}


def config(root: Path, lines: str) -> dict[str, Any]:
    """As labdeck's container: the shim's output hook, an unrotated json-file."""
    return {"Image": DOCKER_IMAGE, "Cmd": ["python3", "/w/spam.py", lines], "WorkingDir": "/w",
            "Env": ["PYTHONUNBUFFERED=", "PYTHONPATH=/shim", "LABDECK_FLUSH_S=0.05"],
            "HostConfig": {"Binds": [f"{root}:/w", f"{REPO / 'backends' / 'shim'}:/shim:ro"],
                           "LogConfig": {"Type": "json-file",
                                         "Config": {"max-size": "1t", "max-file": "1"}}}}


def frames(buf: bytearray) -> list[tuple[int, bytes]]:
    out = []
    while len(buf) >= 8:
        size = int.from_bytes(buf[4:8], "big")
        if len(buf) < 8 + size:
            break
        out.append((buf[0], bytes(buf[8:8 + size])))
        del buf[:8 + size]
    return out


async def via(mode: str, root: Path, lines: str) -> int:
    api = DockerAPI(f"unix://{SOCKET}")
    cid = await api.create(config(root, lines))
    log = LogWriter(root / f"log-{mode}")
    split = {1: LineSplitter(), 2: LineSplitter()}
    count = 0

    def write(kind: int, payload: bytes) -> None:
        nonlocal count
        if got := split[kind].feed(payload):
            count += len(got)
            log.write_lines(NAMES[kind], got, time.time())  # stamped on arrival

    try:
        if mode == "attach":
            reader, writer = await asyncio.open_unix_connection(SOCKET, limit=1 << 16)
            writer.write((f"POST /containers/{cid}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1"
                          "\r\nHost: docker\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n"
                          "Content-Length: 0\r\n\r\n").encode())
            await writer.drain()
            head = await read_response(reader)  # the daemon attaches before it answers
            assert head.status in (101, 200), head.status
            await api.start(cid)
            buf = bytearray()
            while chunk := await reader.read(1 << 20):
                buf += chunk
                for kind, payload in frames(buf):
                    write(kind, payload)
            writer.close()
        else:
            await api.start(cid)
            params = {"follow": True, "timestamps": True, "stdout": True, "stderr": True}
            async with api.stream("GET", f"/containers/{cid}/logs", params) as response:
                async for kind, payload in response.frames():
                    write(kind, payload[payload.find(b"Z ", 0, 40) + 2:])
        await api.wait(cid)
    finally:
        await api.remove(cid)
        await api.close()
        log.close()
    return count


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    lines = sys.argv[2] if len(sys.argv) > 2 else "1000000"
    root = Path(tempfile.mkdtemp(prefix="labdeck-attach-"))
    (root / "spam.py").write_text(SPAM)

    def docker_run() -> None:
        with open(root / "out.txt", "wb") as fh:
            subprocess.run(["docker", "run", "--rm", "-e", "PYTHONUNBUFFERED=", "-v",
                            f"{root}:/w", "-w", "/w", DOCKER_IMAGE, "python3", "spam.py", lines],
                           stdout=fh, check=True)

    times: dict[str, list[float]] = {"docker run": [], "attach": [], "logs": []}
    try:
        for n in range(rounds + 1):  # the first round warms up
            a, _ = timed(docker_run)
            b, got_b = timed(lambda: asyncio.run(via("attach", root, lines)))
            c, got_c = timed(lambda: asyncio.run(via("logs", root, lines)))
            print(f"round {n}: docker run {a:.2f}s, attach {b:.2f}s ({got_b} lines), "
                  f"logs {c:.2f}s ({got_c} lines)", flush=True)
            if n:
                for name, value in zip(times, (a, b, c), strict=True):
                    times[name].append(value)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    med = {name: statistics.median(values) for name, values in times.items()}
    base = med["docker run"]
    print(f"medians: docker run {base:.2f}s; attach {med['attach']:.2f}s "
          f"({med['attach'] / base:.2f}x); logs endpoint {med['logs']:.2f}s "
          f"({med['logs'] / base:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
