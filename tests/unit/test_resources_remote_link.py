"""A container on a remote daemon whose SSH link drops for a moment: the sampler skips the
samples it cannot take and goes on (it stopped for the rest of the run, with "resource sampling
of run ... stopped: ConnectionRefusedError" in the log, after a cut the run itself survived)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from backends.resources import FILE, Container, ContainerRef, sample_resources


def test_a_remote_daemon_out_of_reach_is_a_skipped_sample_not_the_end(tmp_path: Path) -> None:
    gone = f"unix://{tmp_path}/no-daemon.sock"  # refused, as the link's socket between links
    assert asyncio.run(Container(ContainerRef(gone, "c1", local_daemon=False)).sample()) == {}
    with pytest.raises(OSError):  # this machine's daemon gone: sampling ends, as before
        asyncio.run(Container(ContainerRef(gone, "c1", local_daemon=True)).sample())


def test_sampling_goes_on_after_the_link_comes_back(tmp_path: Path) -> None:
    sock = tmp_path / "docker.sock"
    stats = {"read": "2026-12-02T00:00:01Z", "cpu_stats": {"cpu_usage": {"total_usage": 5},
             "system_cpu_usage": 10, "online_cpus": 1}, "memory_stats": {"usage": 1000}}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = json.dumps(stats).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    async def main() -> str | None:
        stop = asyncio.Event()
        task = asyncio.create_task(sample_resources(
            "r1", ContainerRef(f"unix://{sock}", "c1", local_daemon=False), tmp_path, stop,
            interval=0.05, first_after=0))
        await asyncio.sleep(0.3)  # no daemon yet: samples skipped
        server = await asyncio.start_unix_server(serve, str(sock))
        try:
            for _ in range(200):
                if (tmp_path / FILE).exists():
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            server.close()
        return await task

    assert asyncio.run(main()) is None
    rows = [json.loads(line) for line in (tmp_path / FILE).read_text().splitlines()]
    assert rows and rows[0]["rss"] == 1000
