"""``type: cluster`` with ``sparkMaster: spark://host:port``: a standalone Spark cluster
reached directly. Keys: ``deployMode`` client (default: spark-submit here, the driver here, the
local target's process handling) or cluster (the driver on a worker, through the master's REST
submission server: ``sparkRestUrl``, default http://<master host>:6066); ``sparkMasterUi``
(default http://<master host>:8080) finds the worker that runs a cluster-mode driver, whose UI
serves its output. ``type: cluster`` with ``address`` (an HDInsight-style head node over SSH)
is head.py's HeadNodeBackend: this class hands such computes to it."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from ..base import (
    Capability,
    EnvRef,
    Explanation,
    LogBatch,
    RunContext,
    RunHandle,
    TargetInfo,
    compute_line,
)
from ..config import Compute
from ..errors import ConfigError, TargetError, UsageError
from ..linesplit import LineSplitter
from ..local import LocalBackend
from . import locate, rest
from . import plan as spark
from .facts import SparkFacts
from .submit import is_master_url, rest_create_body

POLL = 0.5
EXIT_CODES = {"FINISHED": 0, "FAILED": 1, "ERROR": 1, "KILLED": 143}


def master_host(compute: Compute) -> str:
    first = (compute.spark_master or "").removeprefix("spark://").split(",")[0]
    return first.rsplit(":", 1)[0]


def rest_url(compute: Compute) -> str:
    return compute.spark_rest_url or f"http://{master_host(compute)}:6066"


def master_ui(compute: Compute) -> str:
    return compute.spark_master_ui or f"http://{master_host(compute)}:8080"


def check_master(compute: Compute) -> None:
    """One line when no master of the compute answers on its port."""
    for hostport in (compute.spark_master or "").removeprefix("spark://").split(","):
        host, _, port = hostport.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=3).close()
            return
        except OSError:
            continue
    raise TargetError(f"the Spark master {compute.spark_master} does not answer "
                      f"(target {compute.name!r}; is it started?)")


def is_head_node(compute: Compute) -> bool:
    """A head node over SSH (``address``), not a standalone master reached directly."""
    return compute.address is not None or compute.spark_master is None


DIRECT = frozenset({Capability.CANCEL, Capability.LIVE_METRICS})
# head.py's HeadNodeBackend.capabilities, here so that a standalone run never imports head.py
HEAD = frozenset({Capability.CANCEL, Capability.LIVE_METRICS, Capability.REATTACH})


class SparkClusterBackend(LocalBackend):
    capabilities: ClassVar[frozenset[Capability]] = DIRECT | HEAD

    def __new__(cls, compute: Compute) -> SparkClusterBackend:
        if cls is SparkClusterBackend and is_head_node(compute):
            from .head import HeadNodeBackend

            return HeadNodeBackend(compute)  # type: ignore[return-value]
        return super().__new__(cls)

    @classmethod
    def capabilities_for(cls, compute: Compute) -> frozenset[Capability]:
        return HEAD if is_head_node(compute) else DIRECT

    @classmethod
    def validate(cls, compute: Compute) -> None:
        if is_head_node(compute):
            from .head import HeadNodeBackend

            HeadNodeBackend.validate(compute)
            return
        super().validate(compute)
        assert compute.spark_master is not None
        if not is_master_url(compute.spark_master):
            raise ConfigError(f"sparkMaster must look like spark://host:port, got "
                              f"{compute.spark_master!r}", compute.path,
                              compute_line(compute, "sparkMaster"))
        if compute.deploy_mode not in {"client", "cluster"}:
            raise ConfigError(f"deployMode must be 'client' or 'cluster', got "
                              f"{compute.deploy_mode!r}", compute.path,
                              compute_line(compute, "deployMode"))
        for key, value in (("sparkRestUrl", compute.spark_rest_url),
                           ("sparkMasterUi", compute.spark_master_ui)):
            if value is not None and urlsplit(value).scheme not in {"http", "https"}:
                raise ConfigError(f"{key} must be an http:// URL, got {value!r}", compute.path,
                                  compute_line(compute, key))

    def _require_spark(self, ctx: RunContext) -> None:
        if not spark.is_spark(ctx):
            where = f" ({ctx.target.runconfig.path})" if ctx.target.runconfig.path else ""
            raise UsageError(f"target {self.compute.name!r} is a Spark cluster: its runs need "
                             f"Framework: PySpark{where}")

    def _rest_body(self, ctx: RunContext, python: str) -> dict[str, object]:
        argv = spark.script_argv(ctx)
        submit = locate.spark_submit(self.compute, python)
        env = {**ctx.env, **self.run_env(ctx)}
        return rest_create_body(self.compute.spark_master or "", locate.app_resource(submit),
                                str(ctx.workdir / argv[0]), argv[1:], ctx.run_id, env,
                                ctx.target.spark)

    def explain(self, ctx: RunContext) -> Explanation:
        self._require_spark(ctx)
        python = self.compute.python_location or sys.executable
        master = self.compute.spark_master or ""
        if self.compute.deploy_mode == "cluster":
            url = f"{rest_url(self.compute).rstrip('/')}/v1/submissions/create"
            command = ["curl", "-X", "POST", "-H", "Content-Type: application/json", "--data",
                       json.dumps(self._rest_body(ctx, python)), url]
            how = f"the master's REST server, the driver on a worker of {master}"
        else:
            command = spark.command(ctx, python, master)
            how = f"spark-submit here, the driver here (client mode) on {master}"
        return Explanation(commands=[command], workdir=str(ctx.workdir), env=self.run_env(ctx),
                           notes=[f"spark cluster {self.compute.name!r}: {how}"])

    async def start(self, ctx: RunContext, env: EnvRef) -> RunHandle:
        self._require_spark(ctx)
        if self.compute.deploy_mode != "cluster":
            # spark-submit would retry an unanswering master for a minute: ask its port first.
            await asyncio.to_thread(check_master, self.compute)
            return await super().start(ctx, env)  # spark-submit --master spark://... here
        body = self._rest_body(ctx, env.ref)
        url = rest_url(self.compute)
        try:
            sid = await asyncio.to_thread(rest.create, url, body)
        except TargetError as err:
            raise TargetError(f"{err}; Python cluster mode needs the master's REST server "
                              "(spark.master.rest.enabled true)") from err
        facts = SparkFacts(ctx.run_dir, {"master": self.compute.spark_master or "",
                                         "submission_id": sid, "rest_url": url})
        return RestDriverHandle(url, master_ui(self.compute), sid, facts)

    async def describe(self) -> TargetInfo:
        try:
            state = await asyncio.to_thread(rest.master_state, master_ui(self.compute))
        except TargetError as err:
            return TargetInfo(False, str(err))
        return TargetInfo(True, f"{self.compute.spark_master}: {state.get('aliveworkers')} "
                                f"worker(s), {state.get('cores')} cores")


class RestDriverHandle(RunHandle):
    """A cluster-mode driver submitted through the REST server: its state polled, its output
    read from its worker's UI by offset (stdout: the script's; stderr: Spark's log)."""

    def __init__(self, rest_url: str, ui_url: str, sid: str, facts: SparkFacts):
        self.rest_url = rest_url
        self.ui_url = ui_url
        self.sid = sid
        self.facts = facts
        self.durable_ref = f"spark-driver:{sid}"
        self.state = "SUBMITTED"
        self.driver_dir: str | None = None
        self._ended = asyncio.Event()

    async def _poll_state(self) -> dict[str, object]:
        answer = await asyncio.to_thread(rest.status, self.rest_url, self.sid)
        self.state = str(answer.get("driverState", self.state))
        return answer

    async def logs(self) -> AsyncIterator[LogBatch]:
        loop = asyncio.get_running_loop()
        worker: str | None = None
        offsets = {"stdout": 0, "stderr": 0}
        splitters = {"stdout": LineSplitter(), "stderr": LineSplitter()}
        try:
            while True:
                answer = await self._poll_state()
                done = self.state in rest.TERMINAL_DRIVER_STATES
                if worker is None and isinstance(answer.get("workerId"), str):
                    worker = await asyncio.to_thread(rest.worker_ui, self.ui_url,
                                                     str(answer["workerId"]))
                    note = self.facts.add("driver_worker", worker or "",
                                          f"driver {self.sid} runs on the worker at {worker}")
                    if worker is not None and note:
                        yield LogBatch("sys", note)
                while worker is not None:  # drain what is there, chunk by chunk
                    got_any = False
                    for log_type, stream in (("stdout", "out"), ("stderr", "err")):
                        read = await asyncio.to_thread(rest.read_driver_log, worker, self.sid,
                                                       log_type, offsets[log_type])
                        if read is None or not read[0]:
                            continue
                        data, offsets[log_type], path = read
                        self.driver_dir = str(Path(path).parent)
                        got_any = True
                        if lines := splitters[log_type].feed(data, loop.time()):
                            yield LogBatch(stream, lines)
                            if stream == "err" and (notes := self.facts.scan(lines)):
                                yield LogBatch("sys", notes)
                    if not got_any:
                        break
                if done:
                    for log_type, stream in (("stdout", "out"), ("stderr", "err")):
                        if lines := splitters[log_type].flush():
                            yield LogBatch(stream, lines)
                    return
                await asyncio.sleep(POLL)
        finally:
            self._ended.set()

    async def wait(self) -> int:
        await self._ended.wait()
        while self.state not in rest.TERMINAL_DRIVER_STATES:  # logs() stopped early
            await self._poll_state()
            if self.state not in rest.TERMINAL_DRIVER_STATES:
                await asyncio.sleep(POLL)
        return EXIT_CODES.get(self.state, 1)

    async def cancel(self, grace: float) -> None:
        """The REST kill, then the driver's state watched until it is terminal."""
        await asyncio.to_thread(rest.kill, self.rest_url, self.sid)
        deadline = asyncio.get_running_loop().time() + max(grace, 10.0)
        while asyncio.get_running_loop().time() < deadline:
            await self._poll_state()
            if self.state in rest.TERMINAL_DRIVER_STATES:
                return
            await asyncio.sleep(POLL)

    async def collect_outputs(self, dest: Path) -> list[str]:
        """The driver ran in its folder on the worker: its outputs/ come back when that folder
        is readable here (a worker on this machine); a remote worker keeps them."""
        if self.driver_dir is None or not (Path(self.driver_dir) / "outputs").is_dir():
            return []
        from ..outputs import collect_outputs_dir

        return await asyncio.to_thread(
            collect_outputs_dir, Path(self.driver_dir) / "outputs", dest, False)
