"""The head node's pieces without SSH nor a JVM: the spark-submit lines for YARN (cluster and
client) and for a head node without it, YARN's outputs read from recorded transcripts
(tests/spark/recorded/, named as such: YARN cannot run here), the probe's parsing, failure
reasons, and the launcher, follower and cancel scripts run for real by sh and python3 here."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backends import metrics
from backends.base import RunContext
from backends.project import Project as EngineProject
from backends.spark import remote, yarn
from backends.spark.facts import FailureWatch, failure_hint
from backends.spark.head import HeadNodeBackend, PythonEnv
from tests.conftest import Project

RECORDED = Path(__file__).parent / "recorded"


def _ctx(project: Project, name: str = "spark-head") -> RunContext:
    eng = EngineProject(project.root)
    target = eng.resolve(name)
    return RunContext(run_id="proj_1", project=eng, target=target, run_dir=project.root / "r",
                      workdir=project.root, argv=["iris_spark.py", "0.1"],
                      env={"LABDECK_RUN_ID": "proj_1"})


def _flag(cmd: list[str], flag: str) -> list[str]:
    return [cmd[i + 1] for i, arg in enumerate(cmd[:-1]) if arg == flag]


def test_yarn_cluster_line_ships_the_packed_env_the_shim_and_the_variables(
        sample_copy: Project) -> None:
    ctx = _ctx(sample_copy)
    backend = HeadNodeBackend(ctx.compute)
    env = PythonEnv("/home/u/.labdeck/envs/abc/bin/python", "/home/u/.labdeck/envs/abc.tar.gz")
    cmd, run_env = backend.command(ctx, "/home/u/run", "yarn", "cluster", env)
    assert cmd[:5] == ["spark-submit", "--master", "yarn", "--deploy-mode", "cluster"]
    assert _flag(cmd, "--archives") == ["/home/u/.labdeck/envs/abc.tar.gz#environment"]
    assert _flag(cmd, "--py-files") == ["/home/u/run/shim.zip"]
    confs = _flag(cmd, "--conf")
    assert "spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python" in confs
    assert "spark.yarn.appMasterEnv.LABDECK_RUN_ID=proj_1" in confs
    assert cmd[-2:] == ["iris_spark.py", "0.1"]
    assert "PYTHONPATH" not in run_env and "PYSPARK_DRIVER_PYTHON" not in run_env


def test_yarn_client_line_runs_the_driver_in_the_venv_executors_in_the_archive(
        sample_copy: Project) -> None:
    ctx = _ctx(sample_copy)
    backend = HeadNodeBackend(ctx.compute)
    env = PythonEnv("/e/bin/python", "/e.tar.gz")
    cmd, run_env = backend.command(ctx, "/r", "yarn", "client", env)
    assert cmd[:5] == ["spark-submit", "--master", "yarn", "--deploy-mode", "client"]
    assert "--py-files" not in cmd and _flag(cmd, "--archives") == ["/e.tar.gz#environment"]
    assert run_env["PYSPARK_DRIVER_PYTHON"] == "/e/bin/python"
    assert run_env["PYSPARK_PYTHON"] == "./environment/bin/python"
    assert run_env["PYTHONPATH"] == "/r/shim"


def test_the_master_yarn_first_then_the_compute_then_spark_defaults_then_local(
        sample_copy: Project) -> None:
    ctx = _ctx(sample_copy)
    backend = HeadNodeBackend(ctx.compute)
    yarn_env = remote.HeadFacts(hadoop_conf_dir="/etc/hadoop/conf", defaults_master="local[2]")
    assert backend.master_and_mode(yarn_env) == ("yarn", "cluster")
    assert backend.master_and_mode(remote.HeadFacts(yarn_conf_dir="/y")) == ("yarn", "cluster")
    assert backend.master_and_mode(remote.HeadFacts(defaults_master="spark://hn0:7077")) == (
        "spark://hn0:7077", None)
    assert backend.master_and_mode(remote.HeadFacts()) == ("local[*]", None)
    named = HeadNodeBackend(type(ctx.compute)(**{**ctx.compute.__dict__,
                                                 "spark_master": "spark://10.0.0.4:7077"}))
    assert named.master_and_mode(remote.HeadFacts(defaults_master="local[2]")) == (
        "spark://10.0.0.4:7077", None)
    cmd, _ = backend.command(ctx, "/r", "local[2]", None)
    assert cmd[:3] == ["spark-submit", "--master", "local[2]"] and "--deploy-mode" not in cmd


def test_probe_output_parsed() -> None:
    facts = remote.parse_probe("motd line\nhadoop_conf_dir=/etc/hadoop/conf\nyarn_conf_dir=\n"
                               "java=/usr/lib/jvm/java-17/bin/java\nspark_submit=/usr/bin/"
                               "spark-submit\ndefaults_master=yarn\npython=3.11\nhome=/home/u\n")
    assert facts.has_yarn and facts.java.endswith("/java") and facts.python == "3.11"
    assert not remote.parse_probe("java=\n").has_yarn


def test_recorded_yarn_cluster_submit_output() -> None:
    """A recorded transcript (tests/spark/recorded/README.md): app id, tracking URL, status."""
    client = yarn.ClientFacts()
    found = [fact for line in (RECORDED / "yarn-cluster-submit.stderr").read_text().splitlines()
             for fact in client.feed(line)]
    assert ("app_id", "application_1710400000000_0007") in found
    assert client.app_id == "application_1710400000000_0007"
    assert client.state == "FINISHED" and client.final_status == "SUCCEEDED"
    assert client.tracking_url == ("https://myhdi.azurehdinsight.net/yarnui/hn/proxy/"
                                   "application_1710400000000_0007/")
    failed = yarn.ClientFacts()
    for line in (RECORDED / "yarn-cluster-failed.stderr").read_text().splitlines():
        failed.feed(line)
    assert failed.app_id == "application_1710400000000_0008" and failed.final_status == "FAILED"
    assert yarn.app_id_in((RECORDED / "yarn-kill.txt").read_text()) is None  # not "Submitted"
    assert yarn.kill_command("application_1_2") == ["yarn", "application", "-kill",
                                                    "application_1_2"]


def test_recorded_yarn_logs_give_the_drivers_output_with_its_metrics() -> None:
    containers = yarn.parse_logs((RECORDED / "yarn-logs-iris.txt").read_text())
    assert [(c.number, sorted(c.files)) for c in containers] == [
        (2, ["stderr", "stdout"]), (1, ["stderr", "stdout"])]
    driver = yarn.driver_log(containers)
    assert driver is not None and driver.container.endswith("_01_000001")
    assert driver.host == "wn1-myhdi.internal.cloudapp.net_30050"
    lines = driver.files["stdout"].split("\n")  # not splitlines(): metric lines hold \x1e
    assert lines[2] == "Regularization Rate is 0.1"
    parsed = [metrics.parse(line) for line in lines]
    assert ("Accuracy", 0.9512195121951219) in parsed and ("Regularization Rate", 0.1) in parsed
    assert "Final app status: SUCCEEDED" in driver.files["stderr"]
    assert yarn.logs_command("application_1_2") == ["yarn", "logs", "-applicationId",
                                                    "application_1_2"]


@pytest.mark.parametrize(("line", "words"), [
    ('Exception in thread "main" java.lang.IllegalArgumentException: System memory 30932992 '
     "must be at least 471859200. Please increase heap size using the --driver-memory option",
     ["memory is too small: 29 MB", "450 MB", "spark.driver.memory"]),
    ("py4j.protocol.Py4JJavaError: An error occurred while calling z:java.lang.reflect.Array."
     "newInstance.\n: java.lang.OutOfMemoryError: Java heap space",
     ["ran out of memory", "Java heap space", "spark.driver.memory"]),
    ("ModuleNotFoundError: No module named 'sklearn'",
     ["No module named 'sklearn'", "conda_dependencies.yml"]),
    # spark-submit's own end when a package of spark_dependencies.yml cannot be fetched (the
    # head-node rig has no route to Maven Central; seen in the walkthrough of issue 9).
    ('Exception in thread "main" java.lang.RuntimeException: [unresolved dependency: '
     "org.apache.spark#spark-avro_2.13;4.0.0: not found]",
     ["could not be fetched (org.apache.spark#spark-avro_2.13;4.0.0: not found)",
      "spark_dependencies.yml"]),
])
def test_failure_reasons_read_from_the_drivers_output(line: str, words: list[str]) -> None:
    hint = failure_hint(line)
    assert hint is not None
    for word in words:
        assert word in hint
    watch = FailureWatch()
    watch.feed(["INFO all is well", line, "Traceback (most recent call last):",
                "RuntimeError: later"])
    assert watch.reason == hint
    assert failure_hint("INFO SparkContext: Running Spark version 4.3.0") is None


def test_a_failing_scripts_last_exception_is_the_reason() -> None:
    watch = FailureWatch()
    watch.feed(["Traceback (most recent call last):", '  File "a.py", line 3, in <module>',
                "26/12/01 22:47:07 ERROR Executor: Exception in task 0.0",
                "ValueError: bad regularization rate"])
    assert watch.reason == "the script failed: ValueError: bad regularization rate"
    jvm = FailureWatch()  # no Python traceback: the JVM's last words are the reason
    jvm.feed(['Exception in thread "main" java.io.FileNotFoundException: /x.py (No such file)'])
    assert jvm.reason == "the script failed: java.io.FileNotFoundException: /x.py (No such file)"
    quiet = FailureWatch()
    quiet.feed(["26/12/01 22:47:07 INFO SparkContext: Successfully stopped SparkContext"])
    assert quiet.reason is None


# ---------------------------------------------------------------- the remote scripts, run here

def _sh(script: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=timeout)


ends: list[tuple[bytes, int]] = []  # each frame's (stream, file offset it ends at)


def _follow(root: Path, mode: str, a: int, b: int) -> tuple[bytes, bytes, str]:
    proc = subprocess.run(["python3", "-c", remote.FOLLOW, str(root), mode, str(a), str(b)],
                          capture_output=True, timeout=60)
    out, err, status = b"", b"", ""
    ends.clear()
    data = proc.stdout
    while data:
        header, _, data = data.partition(b"\n")
        tag, _, rest = header.partition(b" ")
        if tag == b"x":
            status = rest.decode()
            break
        size, end = (int(n) for n in rest.split())
        chunk, data = data[:size], data[size:]
        ends.append((tag, end))
        if tag == b"o":
            out += chunk
        else:
            err += chunk
    return out, err, status


def _alive(pgid: int) -> bool:
    """A process of the group that is not a zombie (an orphan's zombie waits for its reaper)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@pytest.mark.skipif(shutil.which("setsid") is None, reason="setsid (util-linux)")
def test_launcher_detaches_the_driver_and_the_follower_reads_it_to_its_status(
        tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    script = "import sys\nfor i in range(3): print('line', i)\nprint('oops', file=sys.stderr)\n" \
             "sys.exit(3)\n"
    (work / "app.py").write_text(script)
    launched = _sh(remote.launch_script(str(work), [sys.executable, "app.py"], {"X": "1"}))
    pid = remote.pid_from(launched.stdout)
    out, err, status = _follow(tmp_path, "bytes", 0, 0)  # waits for the driver's end
    assert out == b"line 0\nline 1\nline 2\n" and err == b"oops\n"
    assert remote.exit_code(status) == 3
    assert not _alive(pid)
    # A reconnect resumes at a byte; a new supervisor past the lines its log has.
    assert _follow(tmp_path, "bytes", 7, 0)[0] == b"line 1\nline 2\n"
    assert _follow(tmp_path, "lines", 2, 1)[:2] == (b"line 2\n", b"")
    # Past skipped lines, a frame still says where its bytes end in the file (the offset a
    # reconnect resumes at), not how many bytes were sent.
    assert ends == [(b"o", len(b"line 0\nline 1\nline 2\n"))]


@pytest.mark.skipif(shutil.which("setsid") is None, reason="setsid (util-linux)")
def test_cancel_kills_the_drivers_whole_group_and_the_follower_says_killed(
        tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    # A driver with a child of its own (as spark-submit's JVM has its Python driver).
    (work / "app.py").write_text(
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print('started', flush=True)\ntime.sleep(600)\n")
    pid = remote.pid_from(_sh(remote.launch_script(str(work), [sys.executable, "app.py"],
                                                   {})).stdout)
    deadline = time.monotonic() + 20
    while b"started" not in (tmp_path / "driver.out").read_bytes():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert _alive(pid)
    done = _sh(remote.cancel_script(pid, 2.0))
    assert done.returncode == 0, done.stderr
    assert not _alive(pid)  # the driver, its child and the launcher's shell: the whole group
    out, _err, status = _follow(tmp_path, "bytes", 0, 0)
    assert out == b"started\n" and remote.exit_code(status) in (remote.KILLED, 143)


def test_frames_of_the_follower_are_read_back() -> None:
    from backends.spark.head import _frames

    class Reader:
        def __init__(self, data: bytes):
            self.data = data

        async def readline(self) -> bytes:
            line, sep, self.data = self.data.partition(b"\n")
            return line + sep

        async def readexactly(self, n: int) -> bytes:
            chunk, self.data = self.data[:n], self.data[n:]
            return chunk

    async def collect() -> list[tuple[str, bytes, int]]:
        reader = Reader(b"o 3 10\na\nbe 2 2\nx\nx 0\n")
        return [f async for f in _frames(reader)]  # type: ignore[arg-type, misc]

    assert asyncio.run(collect()) == [("out", b"a\nb", 10), ("err", b"x\n", 2), ("x", b"0", 0)]


def test_head_node_keys_checked_with_file_and_line(sample_copy: Project) -> None:
    sample_copy.write("aml_config/badhead.compute", 'type: "cluster"\naddress: "127.0.0.1:9"\n'
                      'username: "u"\nsparkMaster: "http://10.0.0.4:7077"\n')
    res = sample_copy.cli("submit", "--explain", "-c", "badhead", "iris_spark.py")
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert "badhead.compute:4:" in lines[0] and "sparkMaster must look like" in lines[0]


def test_unreachable_head_node_fails_the_run_in_one_line(sample_copy: Project,
                                                         tmp_path: Path) -> None:
    sample_copy.write("aml_config/gonehead.compute", 'type: "cluster"\naddress: "127.0.0.1:9"\n'
                      'username: "u"\n')
    res = sample_copy.cli("submit", "-c", "gonehead", "iris_spark.py",
                          env={"HOME": str(tmp_path), "SSH_AUTH_SOCK": ""})
    assert res.returncode != 0
    record = json.loads(sample_copy.cli("runs", "last", "-o", "json", check=True).stdout)
    assert record["status"] == "failed"
    assert record["error"] == ("connection to u@127.0.0.1:9 refused (is sshd running, is the "
                               "port right?)"), record["error"]


def test_head_node_capabilities_as_the_cluster_type_declares_them(sample_copy: Project) -> None:
    from backends.spark.backend import HEAD, SparkClusterBackend

    ctx = _ctx(sample_copy)
    assert HeadNodeBackend.capabilities == HEAD
    assert SparkClusterBackend.capabilities_for(ctx.compute) == HEAD
    assert isinstance(SparkClusterBackend(ctx.compute), HeadNodeBackend)
