"""A Spark run's spark-submit line and environment, from its context (runconfig, compute,
spark_dependencies.yml): shared by the local target and the standalone cluster's client mode."""

from __future__ import annotations

import asyncio

from ..base import RunContext, RunHandle
from ..config import Compute
from ..errors import UsageError
from ..runspec import RunSpec
from . import locate
from .submit import LOCAL_MASTER, spark_env, submit_command

__all__ = ["LOCAL_MASTER", "PYSPARK", "command", "env", "framework", "is_spark"]

PYSPARK = "PySpark"


def framework(ctx: RunContext) -> str:
    """The run's framework as frozen at submit (run.json), else the runconfig's (--explain)."""
    try:
        return RunSpec.load(ctx.run_dir).framework
    except (OSError, ValueError, TypeError):
        return ctx.target.runconfig.framework


def is_spark(ctx: RunContext) -> bool:
    return framework(ctx) == PYSPARK


def script_argv(ctx: RunContext) -> list[str]:
    if ctx.argv[:1] == ["-m"]:  # the notebook runner: spark-submit runs files only
        where = f" ({ctx.target.runconfig.path})" if ctx.target.runconfig.path else ""
        raise UsageError(f"a notebook runs with Framework Python, not PySpark{where}")
    return ctx.argv


def master(compute: Compute) -> str:
    """Where spark-submit sends the app: the compute's standalone master, else local[*]."""
    return compute.spark_master or LOCAL_MASTER


def command(ctx: RunContext, python: str, master: str,
            deploy_mode: str | None = None) -> list[str]:
    """The spark-submit line: TargetError (one line) when no Spark is found."""
    argv = script_argv(ctx)
    spark_submit = locate.spark_submit(ctx.compute, python)
    return submit_command(spark_submit, master, ctx.run_id, argv, ctx.target.spark,
                          deploy_mode=deploy_mode)


def env(python: str) -> dict[str, str]:
    return spark_env(python)


def check_java() -> None:
    locate.check_java()


def process_handle(proc: asyncio.subprocess.Process, ctx: RunContext, master: str) -> RunHandle:
    from .facts import SparkFacts
    from .process import SparkProcessHandle

    facts = SparkFacts(ctx.run_dir, {"master": master, "spark_submit_pid": str(proc.pid)})
    return SparkProcessHandle(proc, ctx.workdir, ctx.compute.shared_volumes, facts)
