"""A Spark run driven by a spark-submit process here (local[*], or a standalone master in client
mode): the local target's process handling (own session, tree cancel, pidfd exit), with
Spark's facts picked out of its stderr as it passes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from ..base import LogBatch
from ..local import LocalRunHandle
from .facts import DriverFailed, FailureWatch, SparkFacts


class SparkProcessHandle(LocalRunHandle):
    """stdout: the script's prints and tracebacks (PythonRunner merges the driver's streams);
    stderr: Spark's log4j lines, kept as ``err``; facts found there follow as ``sys`` lines."""

    def __init__(self, proc: asyncio.subprocess.Process, workdir: Path, shared: bool,
                 facts: SparkFacts):
        super().__init__(proc, workdir, shared)
        self.facts = facts
        self.failure = FailureWatch()
        self._drained = asyncio.Event()
        self._collected: list[str] | None = None

    async def logs(self) -> AsyncIterator[LogBatch]:
        try:
            async for batch in super().logs():
                yield batch
                self.failure.feed(batch.lines)
                if batch.stream == "err" and (notes := self.facts.scan(batch.lines)):
                    yield LogBatch("sys", notes)
        finally:
            self._drained.set()

    async def wait(self) -> int:
        """The exit code; a failure the driver's output names plainly (out of memory, a
        missing module) is the run's one-line reason instead (DriverFailed), raised once
        its outputs/ are in the run's folder."""
        code = await super().wait()
        if 0 < code < 128:  # not a signal's end: a cancel stays a cancel
            try:  # the output's end has the reason: wait (briefly) until it is read
                await asyncio.wait_for(self._drained.wait(), 5.0)
            except TimeoutError:
                pass
            if self.failure.reason is not None:
                outputs = await self.collect_outputs(self._outputs_dest())
                raise DriverFailed(self.failure.reason, code, outputs)
        return code

    def _outputs_dest(self) -> Path:
        assert self.facts.run_dir is not None
        return self.facts.run_dir / "outputs"

    async def collect_outputs(self, dest: Path) -> list[str]:
        """Once: a failed driver's were collected before its reason was raised."""
        if self._collected is None:
            self._collected = await super().collect_outputs(dest)
        return self._collected
