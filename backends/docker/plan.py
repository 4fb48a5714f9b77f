"""What a run's container looks like: image inputs, mounts, environment, labels, user, GPUs.

Pure decisions from the compute, the run and this machine; no I/O with the daemon and no asyncio,
so the supervisor can create the container before its event loop exists (docker/early.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import gpu
from ..base import RunContext
from ..config import Compute
from ..metrics import SHIM_DIR
from ..project import Project, Target
from .client import LABEL_PROJECT, LABEL_RUN
from .env import EnvSpec, spec_for

TYPE_CHECKING = False  # importing typing costs ~3 ms of a submit; annotations need none
if TYPE_CHECKING:
    from typing import Any

WORKDIR = "/labdeck/work"
SHIM = "/labdeck/shim"
SHARE = "/azureml-share/"
PYTHON = "python3"
# "1": bind-mount the snapshot and the shim (a daemon on this machine); "0": copy them in and
# outputs/ out through the API. Unset: mount when the daemon's unix socket is on this machine.
MOUNT_ENV = "LABDECK_DOCKER_MOUNT"


class ContainerPlan:
    def __init__(self, compute: Compute, url: str):
        self.compute = compute
        self.url = url

    def env_spec(self, ctx: RunContext) -> EnvSpec:
        return self.env_spec_of(ctx.project, ctx.target)

    def env_spec_of(self, project: Project, target: Target) -> EnvSpec:
        return spec_for(project.root, project.name, self.compute.base_docker_image, target.conda,
                        spark=target.runconfig.framework == "PySpark")

    def command(self, ctx: RunContext) -> list[str]:
        """The container's command: the script with Python, or with spark-submit for a
        Framework PySpark run (local[*] in the container; the image has Java and pyspark)."""
        if not is_pyspark(ctx):
            return [PYTHON, *ctx.argv]
        from ..spark import plan as spark  # only then: it loads asyncio (the early start must not)
        from ..spark.submit import LOCAL_MASTER, submit_command

        return submit_command("spark-submit", LOCAL_MASTER, ctx.run_id, spark.script_argv(ctx),
                              ctx.target.spark)

    def container_env(self, ctx: RunContext) -> dict[str, str]:
        env = dict(ctx.env)
        # The shim first, the runconfig's own PYTHONPATH (EnvironmentVariables) kept behind it.
        theirs = ctx.env.get("PYTHONPATH")
        env["PYTHONPATH"] = SHIM + (":" + theirs if theirs else "")
        if self.compute.share_dir(ctx.project.name) is not None:
            env["AZUREML_NATIVE_SHARE_DIRECTORY"] = SHARE  # ends with "/", as Workbench's
        if is_pyspark(ctx):  # the driver and its Python workers: the image's Python
            from ..spark import plan as spark

            env.update(spark.env(PYTHON))
        return env

    def mounts(self) -> bool:
        """Whether the run's files are bind-mounted rather than copied: the daemon sees this
        machine's files (its unix socket is here), or LABDECK_DOCKER_MOUNT says so."""
        raw = os.environ.get(MOUNT_ENV, "").strip().lower()
        if raw:
            return raw in {"1", "true", "yes"}
        if self.compute.is_remote or not self.url.startswith("unix://"):
            return False
        return os.path.exists(self.url[len("unix://"):])

    def user(self) -> str | None:
        """A client that is not root gets the mounted snapshot's files (outputs/) as its own.
        Not with a rootless daemon (its socket is the client's own): there the container's
        root already is the client on the host."""
        uid = os.getuid()
        if not self.mounts() or self.compute.shared_volumes or uid == 0:
            return None
        try:
            if self.url.startswith("unix://") and os.stat(self.url[7:]).st_uid == uid:
                return None
        except OSError:
            pass
        return f"{uid}:{os.getgid()}"

    def binds(self, ctx: RunContext) -> list[str]:
        binds = []
        # The project's own folder under nativeSharedDirectory, never the base folder itself.
        share = self.compute.share_dir(ctx.project.name)
        if share is not None:
            binds.append(f"{share}:{SHARE}")
        if self.compute.shared_volumes or self.mounts():
            binds.append(f"{ctx.workdir}:{WORKDIR}")
        if self.mounts():
            binds.append(f"{SHIM_DIR}:{SHIM}:ro")
        return binds

    def labels(self, ctx: RunContext) -> dict[str, str]:
        return {LABEL_RUN: ctx.run_id, LABEL_PROJECT: str(ctx.project.root)}

    def config(self, ctx: RunContext, image: str) -> dict[str, Any]:
        """The body of ``POST /containers/create``."""
        host: dict[str, Any] = {
            "Init": True,
            "Binds": self.binds(ctx),
            # The daemon's own log is how the output reaches us (live, and again on reattach):
            # a daemon that rotates logs (max-size in daemon.json) would drop lines a chatty run
            # wrote faster than they were read. The container goes at the run's end, and its
            # log with it; the run's log file is the record.
            # (json-file takes no "unlimited" here: 1 TB in one file is as good.)
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "1t", "max-file": "1"}},
        }
        requests = gpu.device_requests(self.compute.gpus)
        if requests:
            host["DeviceRequests"] = requests
        config: dict[str, Any] = {
            "Image": image,
            "Cmd": self.command(ctx),
            "WorkingDir": WORKDIR,
            "Env": [f"{k}={v}" for k, v in self.container_env(ctx).items()],
            "Labels": self.labels(ctx),
            "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
            "Tty": False, "OpenStdin": False,
            "HostConfig": host,
        }
        user = self.user()
        if user is not None:
            config["User"] = user
        return config

    def prepare_folders(self, ctx: RunContext) -> None:
        """What must exist on this machine before the container starts."""
        if self.mounts() or self.compute.shared_volumes:
            # Workbench made outputs/ before every run (copied runs get it in the archive).
            (ctx.workdir / "outputs").mkdir(exist_ok=True)
        if self.compute.shared_volumes:  # which of the project's outputs/ will be this run's
            from ..outputs import take_baseline

            take_baseline(ctx.workdir / "outputs", ctx.outputs_dir)
        self.compute.make_share_dir(ctx.project.name)

    def outputs(self, ctx: RunContext) -> tuple[str, Path] | None:
        """Where outputs/ is read back from: ``("move", path)`` when the snapshot is mounted (the
        run wrote straight into it), ``("copy", path)`` with sharedVolumes (the project's own
        outputs/), None: copied out of the container."""
        if self.compute.shared_volumes:
            return ("copy", ctx.workdir / "outputs")
        if self.mounts():
            return ("move", ctx.workdir / "outputs")
        return None


def container_name(run_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "_.-" else "-" for c in run_id)
    return f"labdeck-{safe}"


def is_pyspark(ctx: RunContext) -> bool:
    """``spark.plan.is_spark`` without importing it: the framework frozen at submit (run.json),
    else the runconfig's (--explain)."""
    from ..runspec import RunSpec

    try:
        framework = RunSpec.load(ctx.run_dir).framework
    except (OSError, ValueError, TypeError):
        framework = ctx.target.runconfig.framework
    return framework == "PySpark"
