"""A Spark run driven by a spark-submit process here (local[*], or a standalone master in client
mode): the local target's process handling (own session, tree cancel, pidfd exit), with
Spark's facts picked out of its stderr as it passes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from ..base import LogBatch
from ..local import LocalRunHandle
from .facts import SparkFacts


class SparkProcessHandle(LocalRunHandle):
    """stdout: the script's prints and tracebacks (PythonRunner merges the driver's streams);
    stderr: Spark's log4j lines, kept as ``err``; facts found there follow as ``sys`` lines."""

    def __init__(self, proc: asyncio.subprocess.Process, workdir: Path, shared: bool,
                 facts: SparkFacts):
        super().__init__(proc, workdir, shared)
        self.facts = facts

    async def logs(self) -> AsyncIterator[LogBatch]:
        async for batch in super().logs():
            yield batch
            if batch.stream == "err" and (notes := self.facts.scan(batch.lines)):
                yield LogBatch("sys", notes)
