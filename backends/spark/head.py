"""``type: cluster`` as Workbench meant it: an HDInsight-style head node reached over SSH
(``address``, ``port``, ``username``, ``privateKeyFile`` or a stored ``password``, as for
remotedocker; backends/ssh's connection, secrets and sync).

A run: the snapshot and labdeck's shim are synced to ``~/.labdeck/runs/<project>/<run>`` on the
head node; its login environment is probed; spark-submit starts there detached (remote.py's
launcher: its own session, output to files), with ``--master yarn --deploy-mode
<yarnDeployMode>`` when that environment sets HADOOP_CONF_DIR or YARN_CONF_DIR, else with the
master the compute names (``sparkMaster``, as the head node sees it), else the one the head
node's spark-defaults.conf names, else ``local[*]``. The driver's output comes back live over
one SSH channel (a follower reading its files); in YARN cluster mode the driver runs in a
container elsewhere and its output comes from ``yarn logs`` once it ends. A dropped link does
not stop the driver: the handle reconnects and resumes at the byte it had; a new supervisor
takes a run over by its pid on the head node, resuming at its log's line counts. Cancel kills
the YARN application (``yarn application -kill``) and the driver's process group."""

from __future__ import annotations

import asyncio
import hashlib
import shlex
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..base import (
    Backend,
    Capability,
    EnvRef,
    Explanation,
    LogBatch,
    PrepareOptions,
    RunContext,
    RunHandle,
    TargetInfo,
    compute_line,
)
from ..config import Compute
from ..errors import ConfigError, TargetError, UsageError
from ..linesplit import LineSplitter
from ..logfile import ResumePoint
from ..metrics import SHIM_DIR
from . import plan as spark
from . import pyenv as pyenv_mod
from . import remote, yarn
from .facts import DriverFailed, FailureWatch, SparkFacts
from .submit import LOCAL_MASTER, is_master_url, submit_command

if TYPE_CHECKING:
    import asyncssh

    from ..ssh.connection import SSHEndpoint

REMOTE_BASE = "~/.labdeck"
BACKOFF = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)
RECONNECT_FOR = 300.0
REF_PREFIX = "ssh-driver:"


def endpoint_of(compute: Compute) -> SSHEndpoint:
    from ..ssh.connection import SSHEndpoint, split_address

    try:
        host, port = split_address(compute.address or "")
    except ValueError as err:
        raise TargetError(f"target {compute.name!r}: {err}") from err
    if port is None and compute.port != 22:
        port = compute.port
    return SSHEndpoint(host=host, port=port, username=compute.username,
                       identity_file=compute.private_key_file)


def project_folder(ctx: RunContext) -> str:
    digest = hashlib.sha256(str(ctx.project.root).encode()).hexdigest()[:8]
    safe = "".join(c if c.isalnum() or c in "_.-" else "-" for c in ctx.project.name)
    return f"runs/{safe}-{digest}"


def ssh_argv(endpoint: SSHEndpoint) -> list[str]:
    argv = ["ssh"] + (["-p", str(endpoint.port)] if endpoint.port else [])
    argv += ["-i", endpoint.identity_file] if endpoint.identity_file else []
    return [*argv, f"{endpoint.username}@{endpoint.host}" if endpoint.username else endpoint.host]


class HeadLink:
    """One SSH connection to the head node, reconnected with backoff after a drop."""

    def __init__(self, compute: Compute):
        self.compute = compute
        self.endpoint = endpoint_of(compute)
        self.conn: asyncssh.SSHClientConnection | None = None
        self.generation = 0
        self.report: Callable[[str], None] = lambda _m: None
        self._lock = asyncio.Lock()

    @property
    def where(self) -> str:
        return self.endpoint.where

    @property
    def lost(self) -> bool:
        return self.conn is None or self.conn.is_closed()

    async def open(self) -> asyncssh.SSHClientConnection:
        async with self._lock:
            if self.conn is None or self.conn.is_closed():
                await self._connect()
            assert self.conn is not None
            return self.conn

    async def _connect(self) -> None:
        from ..ssh import secrets
        from ..ssh.connection import connect

        if self.endpoint.password is None and self.compute.password is not None:
            password = secrets.load(self.compute.password.value, self.compute.name)
            self.endpoint = replace(self.endpoint, password=password)
        self.conn = await connect(self.endpoint)
        self.generation += 1

    async def recover(self, seen: int) -> None:
        """Reconnect with backoff unless someone did since ``seen``; TargetError after
        RECONNECT_FOR seconds of failures."""
        async with self._lock:
            if self.generation != seen and not self.lost:
                return
            if self.conn is not None:
                self.conn.close()
                self.conn = None
            self.report(f"the SSH link to {self.where} was lost; reconnecting (the driver goes "
                        "on there)")
            began = time.monotonic()
            attempt = 0
            while True:
                try:
                    await self._connect()
                    self.report(f"the SSH link to {self.where} is back after "
                                f"{time.monotonic() - began:.1f} s")
                    return
                except TargetError as err:
                    if time.monotonic() - began > RECONNECT_FOR:
                        raise TargetError(f"lost the SSH link to {self.where} and could not "
                                          f"reconnect: {err}") from err
                    await asyncio.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
                    attempt += 1

    async def run(self, command: str, check: str = "") -> tuple[int, str, str]:
        """A command on the head node: (exit status, stdout, stderr); with ``check``, a
        non-zero status is a TargetError naming ``check`` and the last line of stderr."""
        import asyncssh

        conn = await self.open()
        try:
            result = await conn.run(command, check=False)
        except (OSError, asyncssh.Error) as err:
            raise TargetError(f"{check or 'a command'} on {self.where} failed: {err}") from err
        code = int(result.exit_status if result.exit_status is not None else 255)
        out, err_text = str(result.stdout or ""), str(result.stderr or "")
        if check and code != 0:
            last = err_text.strip().splitlines()[-1:] or [f"exit status {code}"]
            raise TargetError(f"{check} on {self.where} failed: {last[0]}")
        return code, out, err_text

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class HeadNodeBackend(Backend):
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CANCEL, Capability.LIVE_METRICS, Capability.REATTACH})

    def __init__(self, compute: Compute):
        super().__init__(compute)
        self.link = HeadLink(compute)
        self.facts: remote.HeadFacts | None = None

    @classmethod
    def validate(cls, compute: Compute) -> None:
        super().validate(compute)
        compute.check_usable()
        if compute.spark_master is not None and not (
                is_master_url(compute.spark_master) or compute.spark_master.startswith("local")):
            raise ConfigError(f"sparkMaster must look like spark://host:port or local[N], got "
                              f"{compute.spark_master!r}", compute.path,
                              compute_line(compute, "sparkMaster"))
        if compute.shared_volumes:
            raise ConfigError("sharedVolumes: true is not possible on a head node over SSH (the "
                              "project folder is not there; each run gets a synced copy)",
                              compute.path, compute_line(compute, "sharedVolumes"))

    # ------------------------------------------------------------------ the lines

    def python(self) -> str:
        return self.compute.python_location or "python3"

    def master_and_mode(self, facts: remote.HeadFacts) -> tuple[str, str | None]:
        """(master, deploy mode or None) for what the probe found."""
        if facts.has_yarn:
            return "yarn", self.compute.yarn_deploy_mode
        return (self.compute.spark_master or facts.defaults_master or LOCAL_MASTER), None

    def run_env(self, ctx: RunContext, root: str, python: str) -> dict[str, str]:
        env = dict(ctx.env)
        paths = [f"{root}/shim", ctx.env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = ":".join(p for p in paths if p)
        env.update(spark.env(python))
        return env

    def command(self, ctx: RunContext, root: str, master: str, deploy_mode: str | None,
                pyenv: PythonEnv | None = None) -> tuple[list[str], dict[str, str]]:
        """The spark-submit line run on the head node and its environment."""
        argv = spark.script_argv(ctx)
        python = pyenv.python if pyenv is not None else self.python()
        env = self.run_env(ctx, root, python)
        deps = ctx.target.spark
        extra: list[str] = []
        py_files: tuple[str, ...] = ()
        if master == "yarn":
            if pyenv is not None and pyenv.archive:
                extra += ["--archives", f"{pyenv.archive}#environment"]
                env["PYSPARK_PYTHON"] = "./environment/bin/python"
                if deploy_mode == "client":
                    env["PYSPARK_DRIVER_PYTHON"] = pyenv.python
                else:
                    env.pop("PYSPARK_DRIVER_PYTHON", None)
            if deploy_mode == "cluster":
                # The driver runs in a YARN container: the run's variables go through Spark's
                # conf, labdeck's shim as a py-file (sitecustomize loads from a zip too).
                py_files = (f"{root}/shim.zip",)
                for key, value in sorted(env.items()):
                    if key == "PYTHONPATH":
                        continue
                    extra += ["--conf", f"spark.yarn.appMasterEnv.{key}={value}"]
                env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
        command = submit_command(self.compute.spark_submit_location or "spark-submit", master,
                                 ctx.run_id, argv, deps, deploy_mode=deploy_mode,
                                 py_files=py_files)
        if extra:
            at = command.index(argv[0]) if argv else len(command)
            command[at:at] = extra
        return command, env

    def explain(self, ctx: RunContext) -> Explanation:
        spark.script_argv(ctx)
        root = f".labdeck/{project_folder(ctx)}/{ctx.run_id}"  # under the SSH login's home
        ssh = ssh_argv(self.link.endpoint)
        pyenv = (PythonEnv(".labdeck/envs/<wheels-hash>/bin/python",
                           ".labdeck/envs/<wheels-hash>.tar.gz")
                 if pip_requirements(ctx) else None)
        yarn_cmd, yarn_env = self.command(ctx, root, "yarn", self.compute.yarn_deploy_mode,
                                          pyenv)
        other = self.compute.spark_master or "<spark-defaults.conf master, else local[*]>"
        other_cmd, other_env = self.command(ctx, root, other, None, pyenv)

        def on_head(cmd: list[str], env: dict[str, str]) -> list[str]:
            script = f"cd {shlex.quote(root + '/work')} && " + shlex.join(
                ["env", *(f"{k}={v}" for k, v in sorted(env.items())), *cmd])
            return [*ssh, script]

        commands = [
            ["sh", "-c", f"tar czf - -C {shlex.quote(str(ctx.workdir))} . | "
                         f"{shlex.join(ssh)} tar xzf - -C {root}/work"],
            on_head(yarn_cmd, yarn_env),
            on_head(other_cmd, other_env),
        ]
        notes = [
            f"cluster target {self.compute.name!r}: a head node over SSH ({self.link.where}); "
            f"the snapshot is synced to {root} (only files the head node's cache lacks travel)",
            "spark-submit runs there in a login shell (sh -l), detached (its own session, output "
            "to files read back live over SSH): the first line below when that environment sets "
            f"HADOOP_CONF_DIR or YARN_CONF_DIR (YARN, --deploy-mode "
            f"{self.compute.yarn_deploy_mode}), else the second",
        ]
        if ctx.target.conda is not None and pip_requirements(ctx):
            notes.append("Python packages of the conda file (" + ", ".join(pip_requirements(ctx))
                         + "): wheels sent from this machine's cache, installed into a venv on "
                         "the head node (PYSPARK_PYTHON), packed as --archives env.tar.gz"
                         "#environment for YARN")
        return Explanation(commands=commands, workdir=str(ctx.workdir), env={}, notes=notes)

    # ------------------------------------------------------------------ the run's life

    async def probe(self) -> remote.HeadFacts:
        if self.facts is None:
            _, out, _ = await self.link.run(remote.login(remote.PROBE),
                                            "probing the head node's environment")
            self.facts = remote.parse_probe(out)
        return self.facts

    async def prepare(self, ctx: RunContext, options: PrepareOptions) -> EnvRef:
        if not spark.is_spark(ctx):
            where = f" ({ctx.target.runconfig.path})" if ctx.target.runconfig.path else ""
            raise UsageError(f"target {self.compute.name!r} is a Spark head node: its runs need "
                             f"Framework: PySpark{where}")
        spark.script_argv(ctx)
        facts = await self.probe()
        if not facts.spark_submit and not self.compute.spark_submit_location:
            raise TargetError(f"no spark-submit on the head node {self.link.where} (not on the "
                              "PATH of its login environment; set sparkSubmitLocation)")
        if not facts.java:
            raise TargetError(f"Spark needs Java 17+: no java on the head node {self.link.where} "
                              "(JAVA_HOME is not set nor java on PATH in its login environment)")
        return EnvRef(self.python(), cached=True)

    async def start(self, ctx: RunContext, env: EnvRef) -> RunHandle:
        self.link.report = ctx.progress
        try:
            facts = await self.probe()
            master, mode = self.master_and_mode(facts)
            wanted = pip_requirements(ctx)
            wheels = await asyncio.to_thread(
                pyenv_mod.wheels_for, wanted, facts.python or "3", ctx.progress) if wanted else []
            synced_root = await self._sync(ctx, master == "yarn" and mode == "cluster", wheels)
            pyenv = await pyenv_mod.install_remote(self.link, ctx, wheels, facts, synced_root,
                                                   master == "yarn") if wheels else None
            command, run_env = self.command(ctx, synced_root, master, mode, pyenv)
            how = f"--master {master}" + (f" --deploy-mode {mode}" if mode else "")
            ctx.progress(f"spark-submit {how} on the head node {self.link.where}"
                         + (" (YARN: HADOOP_CONF_DIR/YARN_CONF_DIR set there)"
                            if master == "yarn" else ""))
            _, out, err = await self.link.run(
                remote.login(remote.launch_script(f"{synced_root}/work", command, run_env)),
                "starting spark-submit")
            try:
                pid = remote.pid_from(out)
            except TargetError as error:
                raise TargetError(f"{error}: {err.strip()[-200:]}") from None
        except BaseException:
            await self.link.close()
            raise
        facts_file = SparkFacts(ctx.run_dir, {"master": master, "head_node": self.link.where,
                                              "driver_pid": str(pid), "root": synced_root,
                                              **({"deploy_mode": mode} if mode else {})},
                                ui_host=self.link.endpoint.host)
        return HeadRunHandle(self.link, synced_root, pid, facts_file, yarn_cluster=(
            master == "yarn" and mode == "cluster"))

    async def _sync(self, ctx: RunContext, zip_shim: bool, wheels: list[Path]) -> str:
        """The snapshot (work/), labdeck's shim (shim/, zipped too for YARN cluster mode) and
        the wheels of the run's packages (wheels/) to the head node, in one sync."""
        from ..ssh.sync import build_manifest, sync_run

        conn = await self.link.open()
        began = time.monotonic()
        sources = [("work", ctx.workdir), ("shim", SHIM_DIR)]
        with tempfile.TemporaryDirectory(prefix="labdeck-sync-") as tmp:
            if zip_shim:
                (Path(tmp) / "extra").mkdir()
                await asyncio.to_thread(_zip_shim, Path(tmp) / "extra" / "shim.zip")
                sources.append(("extra", Path(tmp) / "extra"))
            if wheels:
                (Path(tmp) / "wheels").mkdir()
                for wheel in wheels:
                    _link_or_copy(wheel, Path(tmp) / "wheels" / wheel.name)
                sources.append(("wheels", Path(tmp) / "wheels"))
            manifest = await asyncio.to_thread(build_manifest, sources, ["work/outputs"])
            # As remote docker's sync: the project's last run folder on the head node (its
            # .tree) becomes this run's, and only the difference from the tree recorded here
            # is described.
            folder = project_folder(ctx)
            mine = hashlib.sha256(f"{self.link.where}\0{REMOTE_BASE}\0{folder}".encode())
            result = await sync_run(conn, f"{folder}/{ctx.run_id}", manifest, base=REMOTE_BASE,
                                    record=ctx.project.state_dir / "sync"
                                    / f"{mine.hexdigest()[:16]}.json")
        ctx.progress(f"sync: {result.sent_files} of {len(manifest.blobs)} distinct files sent "
                     f"({result.bytes_sent} bytes; {result.kept_files} kept from the project's "
                     f"last run folder there) to {self.link.where}:{result.root} in "
                     f"{time.monotonic() - began:.2f} s")
        if zip_shim:
            await self.link.run(f"mv {shlex.quote(result.root)}/extra/shim.zip "
                                f"{shlex.quote(result.root)}/shim.zip", "placing the shim")
        return result.root

    async def reattach(self, ctx: RunContext, durable_ref: str, resume: ResumePoint) -> RunHandle:
        pid_text, _, root = durable_ref.removeprefix(REF_PREFIX).partition(":")
        if not durable_ref.startswith(REF_PREFIX) or not pid_text.isdigit() or not root:
            raise TargetError(f"cannot take over this run: no driver recorded ({durable_ref!r})")
        from .facts import load_facts

        known = load_facts(ctx.run_dir)
        self.link.report = ctx.progress
        await self.link.open()
        counts = resume.lines or {"out": 0, "err": 0}
        facts_file = SparkFacts(ctx.run_dir, known, ui_host=self.link.endpoint.host)
        return HeadRunHandle(self.link, root, int(pid_text), facts_file,
                             yarn_cluster=known.get("master") == "yarn"
                             and known.get("deploy_mode") == "cluster",
                             skip_lines=(counts.get("out", 0), counts.get("err", 0)))

    async def describe(self) -> TargetInfo:
        try:
            facts = await self.probe()
        except TargetError as err:
            return TargetInfo(False, str(err))
        finally:
            await self.link.close()
        master, mode = self.master_and_mode(facts)
        java = facts.java or "no java"
        return TargetInfo(True, f"head node {self.link.where}: spark-submit "
                                f"{facts.spark_submit or '(none)'}, --master {master}"
                                + (f" --deploy-mode {mode}" if mode else "")
                                + f", {java}, python {facts.python or '?'}")


def _link_or_copy(src: Path, dest: Path) -> None:
    import os
    import shutil

    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def _zip_shim(dest: Path) -> None:
    import zipfile

    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(SHIM_DIR.rglob("*.py")):
            zf.write(path, path.relative_to(SHIM_DIR).as_posix())


class HeadRunHandle(RunHandle):
    """A spark-submit running detached on the head node, its output files followed."""

    def __init__(self, link: HeadLink, root: str, pid: int, facts: SparkFacts,
                 yarn_cluster: bool = False, skip_lines: tuple[int, int] | None = None):
        self.link = link
        self.root = root
        self.pid = pid
        self.facts = facts
        self.yarn_cluster = yarn_cluster
        self.skip_lines = skip_lines
        self.durable_ref = f"{REF_PREFIX}{pid}:{root}"
        self.client = yarn.ClientFacts(app_id=facts.facts.get("app_id"))
        self.status: str | None = None
        self.failure = FailureWatch()
        self._ended = asyncio.Event()
        self._collected: list[str] | None = None

    def _scan(self, lines: list[str]) -> list[str]:
        notes = self.facts.scan(lines)
        for line in lines:
            for key, value in self.client.feed(line):
                if key == "app_id":
                    notes += self.facts.add("app_id", value, f"spark application {value}")
                elif key == "tracking_url":
                    notes += self.facts.add("ui_url", value, f"spark UI {value}")
                elif key == "final_status":
                    self.facts.add("final_status", value, "")
        return [n for n in notes if n]

    async def logs(self) -> AsyncIterator[LogBatch]:
        import asyncssh

        loop = asyncio.get_running_loop()
        splitters = {"out": LineSplitter(), "err": LineSplitter()}
        offsets = {"out": 0, "err": 0}
        try:
            while True:
                seen = self.link.generation
                if self.skip_lines is not None and offsets == {"out": 0, "err": 0}:
                    cmd = remote.follow_command(self.root, "lines", *self.skip_lines)
                else:
                    cmd = remote.follow_command(self.root, "bytes", offsets["out"],
                                                offsets["err"])
                try:
                    conn = await self.link.open()
                    proc = await conn.create_process(cmd, encoding=None)
                    try:
                        async for stream, data, end in _frames(proc.stdout):
                            if stream == "x":
                                self.status = data.decode()
                                break
                            # Where the bytes end in the file (after a takeover's skipped
                            # lines too): a reconnect resumes exactly there.
                            offsets[stream] = end
                            if lines := splitters[stream].feed(data, loop.time()):
                                yield LogBatch(stream, lines)
                                self.failure.feed(lines)
                                if stream == "err" and (notes := self._scan(lines)):
                                    yield LogBatch("sys", notes)
                    finally:
                        proc.close()
                except (OSError, asyncssh.Error, TargetError, asyncio.IncompleteReadError):
                    pass
                if self.status is not None:
                    break
                if not self.link.lost:  # the follower died with the link up: try once more
                    await asyncio.sleep(0.5)
                await self.link.recover(seen)
            for stream, splitter in splitters.items():
                if lines := splitter.flush():
                    yield LogBatch(stream, lines)
            if self.yarn_cluster and self.client.app_id:
                async for batch in self._yarn_logs():
                    yield batch
        finally:
            self._ended.set()

    async def _yarn_logs(self) -> AsyncIterator[LogBatch]:
        """YARN cluster mode: the driver's output, from the aggregated logs once it ended."""
        app_id = self.client.app_id or ""
        code, out, err = await self.link.run(remote.login(shlex.join(yarn.logs_command(app_id))))
        driver = yarn.driver_log(yarn.parse_logs(out)) if code == 0 else None
        if driver is None:
            yield LogBatch("sys", [f"yarn logs -applicationId {app_id} gave no driver log "
                                   f"({(err.strip().splitlines() or ['exit ' + str(code)])[-1]})"])
            return
        yield LogBatch("sys", [f"the driver's output from yarn logs ({driver.container} on "
                               f"{driver.host})"])
        for log_type, stream in (("stdout", "out"), ("stderr", "err")):
            text = driver.files.get(log_type, "")
            # split("\n"), never splitlines(): that also cuts at \x1e, which metric lines hold.
            if lines := text.rstrip("\n").split("\n") if text.strip() else []:
                yield LogBatch(stream, lines)
                self.failure.feed(lines)

    async def wait(self) -> int:
        await self._ended.wait()
        code = remote.exit_code(self.status or "")
        if self.yarn_cluster and self.client.final_status not in (None, "SUCCEEDED") and code == 0:
            code = 1
        if 0 < code < 128 and self.failure.reason is not None:  # a canceled one stays canceled
            # Its outputs/ first: the supervisor fails the run on this error at once.
            assert self.facts.run_dir is not None
            reason = self.failure.reason
            try:
                outputs = await self.collect_outputs(self.facts.run_dir / "outputs")
            except TargetError as err:  # the reason stays the reason
                outputs, reason = [], f"{reason}; its outputs/ could not be fetched: {err}"
            raise DriverFailed(reason, code, outputs)
        return code

    async def cancel(self, grace: float) -> None:
        await self.link.run(remote.login(remote.cancel_script(
            self.pid, grace, self.client.app_id if self.facts.facts.get("master") == "yarn"
            else None)), "canceling the driver")

    async def collect_outputs(self, dest: Path) -> list[str]:
        """outputs/ of the run's folder on the head node, as one tar over an exec channel;
        once (a failed driver's are collected before its reason is raised)."""
        if self._collected is None:
            self._collected = await self._fetch_outputs(dest)
        return self._collected

    async def _fetch_outputs(self, dest: Path) -> list[str]:
        import asyncssh

        from ..outputs import extract_tar

        conn = await self.link.open()
        cmd = (f"cd {shlex.quote(self.root + '/work')} 2>/dev/null && [ -d outputs ] && "
               "tar cf - outputs")
        with tempfile.TemporaryFile() as tmp:
            try:
                proc = await conn.create_process(cmd, encoding=None)
                while chunk := await proc.stdout.read(1 << 16):
                    await asyncio.to_thread(tmp.write, chunk)
                await proc.wait_closed()
            except (OSError, asyncssh.Error) as err:
                raise TargetError(f"cannot fetch outputs/ from {self.link.where}: {err}") from err
            if tmp.tell() == 0:
                return []
            tmp.seek(0)
            return await asyncio.to_thread(extract_tar, tmp, dest)

    async def close(self) -> None:
        """The run's folder on the head node becomes its project's .tree (the next sync
        rewrites only what differs; its log is here), then the link goes."""
        import asyncssh

        from ..ssh.sync import release_remote

        try:
            if self.link.conn is not None and not self.link.lost:
                await release_remote(self.link.conn, self.root)
        except (OSError, asyncssh.Error):
            pass
        finally:
            await self.link.close()


async def _frames(reader: asyncssh.SSHReader[bytes]
                  ) -> AsyncIterator[tuple[str, bytes, int]]:
    """The follower's frames: ("out"|"err", bytes, the file offset they end at), and finally
    ("x", status, 0)."""
    while True:
        header = await reader.readline()
        if not header:
            return
        tag, _, rest = header.strip().partition(b" ")
        if tag == b"x":
            yield "x", rest, 0
            return
        size, _, end = rest.partition(b" ")
        data = await reader.readexactly(int(size))
        yield ("out" if tag == b"o" else "err"), data, int(end)


# ---------------------------------------------------------------- Python packages (conda file)


class PythonEnv:
    """Where a run's Python packages are on the head node: a venv's python there, and for YARN
    the venv packed (``--archives <archive>#environment``, PYSPARK_PYTHON
    ./environment/bin/python in the containers)."""

    def __init__(self, python: str, archive: str | None = None):
        self.python = python
        self.archive = archive


def pip_requirements(ctx: RunContext) -> list[str]:
    """The conda file's packages a Spark run needs installed, pip's names: its pip section and
    its conda packages, less python, pip and pyspark (the cluster's Spark provides pyspark; a
    second one would shadow it)."""
    from ..config import conda_name

    conda = ctx.target.conda
    if conda is None:
        return []
    wanted = [*conda.installable_conda_packages, *conda.pip_packages]
    return [spec for spec in wanted if conda_name(spec) not in {"pyspark", "python", "pip"}]


