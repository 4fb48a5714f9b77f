"""type: cluster over SSH on the head-node rig (scripts/start-spark-head.sh): iris_spark.py end to
end (snapshot synced, numpy from the conda file installed there from this machine's wheel cache,
spark-submit with the master the head node's spark-defaults.conf names), a driver that outlives
its supervisor and is taken over, cancel seen on the head node, bad inputs one line each. The
real CLI, real SSH, real JVMs (a Spark job costs 15-90 s here: keep them few)."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from typing import Any

import pytest

from tests.remote.conftest import supervisor_pid

from .conftest import HeadProject, head_sh, last_run_dir

pytestmark = pytest.mark.slow

TICKS = """\
import time
i = 0
while True:
    print("tick", i, flush=True)
    i += 1
    time.sleep(0.3)
"""


def _json(project: HeadProject, *args: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(project.cli(*args, "-o", "json", check=True).stdout)
    return data


def _wait(condition: Any, what: str, guard: float = 120.0) -> Any:
    deadline = time.monotonic() + guard
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.3)


def test_iris_on_the_head_node(head_project: HeadProject, head_rig: dict[str, Any]) -> None:
    explained = head_project.cli("submit", "--explain", "-c", "spark-head", "iris_spark.py",
                                 "0.1", check=True).stdout
    lines = explained.splitlines()
    ssh = f"ssh -p {head_rig['port']} -i {head_rig['identity_file']} labdeck@127.0.0.1"
    assert any(line.startswith(ssh) and "spark-submit --master yarn --deploy-mode cluster"
               in line and "<wheels-hash>.tar.gz#environment" in line for line in lines)
    assert any(line.startswith(ssh) and "spark-submit --master " in line
               and "<spark-defaults.conf master, else local[*]>" in line
               and "PYSPARK_PYTHON=.labdeck/envs/<wheels-hash>/bin/python" in line
               for line in lines), explained
    res = head_project.cli("submit", "-c", "spark-head", "iris_spark.py", "0.1", timeout=400)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    run_id = res.stdout.splitlines()[0].strip()
    record = _json(head_project, "runs", "show", run_id)
    assert record["metrics"]["Regularization Rate"] == 0.1
    assert record["metrics"]["Accuracy"] > 0.8
    run_dir = last_run_dir(head_project)
    log = (run_dir / "log").read_text()
    assert " out Accuracy is " in log and " INFO SparkContext: " in log
    assert " sys python packages: numpy in " in log  # not on the head node: from the conda file
    assert " sys spark-submit --master local[2] on the head node " in log  # its spark-defaults
    spark = json.loads((run_dir / "spark.json").read_text())
    assert spark["master"] == "local[2]" and spark["ui_url"].startswith("http://")
    compared = head_project.cli("runs", "compare", run_id, run_id, check=True).stdout
    assert "Regularization Rate" in compared and "Accuracy" in compared
    # Nothing of the run is left on the head node: its folder, its processes.
    assert head_sh(head_rig, f"ls -d {spark['root']} 2>/dev/null").strip() == ""
    assert head_sh(head_rig, f"ps -o pid= -g {spark['driver_pid']}").strip() == ""


def test_driver_outlives_its_supervisor_and_its_link_then_is_canceled(
        head_project: HeadProject, head_rig: dict[str, Any]) -> None:
    head_project.write("ticks.py", TICKS)
    run_id = head_project.cli("submit", "-a", "-c", "spark-head", "ticks.py",
                              check=True).stdout.strip()
    run_dir = head_project.root / ".labdeck" / "runs" / run_id
    log = run_dir / "log"
    _wait(lambda: log.is_file() and " out tick 3" in log.read_text(), "tick 3 in the log")
    pgid = json.loads((run_dir / "spark.json").read_text())["driver_pid"]
    os.kill(supervisor_pid(head_project, run_id), signal.SIGKILL)
    time.sleep(2)  # the driver goes on there (no PTY, output to files)
    assert head_sh(head_rig, f"ps -o pid= -g {pgid}").strip() != ""
    head_project.cli("runs", "show", run_id, check=True)  # notices; a new supervisor takes over
    _wait(lambda: "reattaching" in log.read_text(), "the new supervisor's note")
    count = len(re.findall(r" out tick \d+", log.read_text()))
    _wait(lambda: len(re.findall(r" out tick \d+", log.read_text())) > count + 3,
          "ticks after the takeover")
    # The link drops (the head node's sshd sessions of the user end): the driver goes on, the
    # handle reconnects and resumes at the byte it had.
    sessions = head_sh(head_rig, "ps -o pid= -o comm= -u labdeck | awk '$2 == \"sshd\" "
                       "{print $1}'").split()
    assert sessions
    head_sh(head_rig, "kill " + " ".join(sessions))
    _wait(lambda: " is back after " in log.read_text(), "the link back")
    count = len(re.findall(r" out tick \d+", log.read_text()))
    _wait(lambda: len(re.findall(r" out tick \d+", log.read_text())) > count + 3,
          "ticks after the link came back")
    head_project.cli("runs", "cancel", run_id, check=True)
    _wait(lambda: _json(head_project, "runs", "show", run_id)["status"] == "canceled",
          "the run canceled", 60)
    assert head_sh(head_rig, f"ps -o pid= -g {pgid}").strip() == ""  # spark-submit's group gone
    ticks = [int(n) for n in re.findall(r" out tick (\d+)", log.read_text())]
    assert ticks == list(range(len(ticks))), ticks  # none lost, none twice across the takeover


def test_head_node_without_java_fails_in_one_line(head_project: HeadProject,
                                                  head_rig: dict[str, Any]) -> None:
    compute = head_project.root / "aml_config" / "spark-head.compute"
    compute.write_text(compute.read_text().replace('username: "labdeck"',
                                                   f'username: "{head_rig["nojava_user"]}"'))
    res = head_project.cli("submit", "-c", "spark-head", "iris_spark.py")
    assert res.returncode != 0
    record = _json(head_project, "runs", "last")
    assert record["status"] == "failed"
    assert record["error"].startswith("Spark needs Java 17+: no java on the head node"), record


def test_missing_python_dependency_on_the_head_node_is_the_reason(
        head_project: HeadProject) -> None:
    head_project.write("needs.py", "import os\nos.makedirs('outputs', exist_ok=True)\n"
                                   "open('outputs/partial.txt', 'w').write('so far')\n"
                                   "import labdeck_no_such_module\n")
    res = head_project.cli("submit", "-c", "spark-head", "needs.py", timeout=300)
    assert res.returncode != 0
    record = _json(head_project, "runs", "last")
    assert record["status"] == "failed"
    assert "No module named 'labdeck_no_such_module'" in record["error"], record
    assert "conda_dependencies.yml" in record["error"]
    outputs = head_project.root / ".labdeck" / "runs" / record["id"] / "outputs"
    assert (outputs / "partial.txt").read_text() == "so far"  # a failed driver's come back


# YARN cannot run on this machine kind: the head node's yarnuser has YARN configured in its login
# environment (HADOOP_CONF_DIR) and STAND-INS for spark-submit and yarn that replay the recorded
# outputs of tests/spark/recorded/ (scripts/rig-spark/yarn-standin/). What runs for real: SSH,
# the probe, the venv packed for --archives, the lines sent, the app id and tracking URL read from
# the client's output, yarn logs parsed into the driver's output and metrics, yarn -kill.

def _as_user(project: HeadProject, user: str) -> None:
    compute = project.root / "aml_config" / "spark-head.compute"
    compute.write_text(compute.read_text().replace('username: "labdeck"', f'username: "{user}"'))


def test_yarn_cluster_mode_on_recorded_yarn_outputs(head_project: HeadProject,
                                                     head_rig: dict[str, Any]) -> None:
    _as_user(head_project, head_rig["yarn_user"])
    res = head_project.cli("submit", "-c", "spark-head", "iris_spark.py", "0.1", timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    record = _json(head_project, "runs", "last")
    # The metrics came from the driver's stdout in the recorded `yarn logs` output.
    assert record["metrics"] == {"Regularization Rate": 0.1, "Accuracy": 0.9512195121951219}
    run_dir = last_run_dir(head_project)
    spark = json.loads((run_dir / "spark.json").read_text())
    assert (spark["master"], spark["deploy_mode"]) == ("yarn", "cluster")
    assert spark["app_id"] == "application_1710400000000_0007"
    assert spark["ui_url"].endswith("/proxy/application_1710400000000_0007/")
    log = (run_dir / "log").read_text()
    assert " sys the driver's output from yarn logs (container_e02_1710400000000_0007_01_000001" \
        in log and " out Accuracy is 0.9512" in log
    args = head_sh(head_rig, "cat /home/yarnuser/standin-submit.args").split("\n")
    assert args[:4] == ["--master", "yarn", "--deploy-mode", "cluster"]
    archive = args[args.index("--archives") + 1]
    assert archive.endswith(".tar.gz#environment")
    listed = head_sh(head_rig, f"tar tzf {archive.split('#')[0]}").split("\n")
    assert "./lib/python3.11/site-packages/numpy/__init__.py" in listed  # the venv, packed
    assert "spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python" in args
    assert args[args.index("--py-files") + 1].endswith("/shim.zip")


def test_yarn_cancel_kills_the_application(head_project: HeadProject,
                                           head_rig: dict[str, Any]) -> None:
    _as_user(head_project, head_rig["yarn_user"])
    head_project.write("long_app.py", TICKS)
    run_id = head_project.cli("submit", "-a", "-c", "spark-head", "long_app.py",
                              check=True).stdout.strip()
    log = head_project.root / ".labdeck" / "runs" / run_id / "log"
    _wait(lambda: log.is_file() and "(state: RUNNING)" in log.read_text(), "the app RUNNING")
    assert " sys spark application application_1710400000000_0007" in log.read_text()
    head_project.cli("runs", "cancel", run_id, check=True)
    _wait(lambda: _json(head_project, "runs", "show", run_id)["status"] == "canceled",
          "the run canceled", 60)
    # yarn application -kill reached YARN (the stand-in), and spark-submit's group is gone.
    assert head_sh(head_rig, "test -f /home/yarnuser/standin-killed && echo killed").strip() \
        == "killed"
    pgid = json.loads((log.parent / "spark.json").read_text())["driver_pid"]
    assert head_sh(head_rig, f"ps -o pid= -g {pgid}").strip() == ""


def test_attach_cluster_then_runs_on_it_reuse_the_head_nodes_folder(
        head_project: HeadProject, head_rig: dict[str, Any], tmp_path: Any) -> None:
    """``target attach cluster`` as a new user would: a project with nothing yet, the head node
    reached with a password (checked before anything is written; a wrong one writes nothing),
    then two runs on it; the second gets the first's folder there (its .tree) as its own."""
    import subprocess

    from tests.conftest import cli_argv, cli_env

    root = tmp_path / "hdi-project"
    (root / "aml_config").mkdir(parents=True)
    where = f"{head_rig['host']}:{head_rig['port']}"

    def attach(password: str) -> subprocess.CompletedProcess[str]:
        # what a user types (the CLI: click, attach_cli, backends.spark.attach)
        return subprocess.run(cli_argv("target", "attach", "cluster", "--name", "hdi",
                                       "--address", where, "--username", "labdeck",
                                       "--password-stdin"),
                              input=password + "\n", capture_output=True, text=True,
                              timeout=120, cwd=root, env=cli_env(head_project.env))

    refused = attach("not-the-password")
    assert refused.returncode != 0 and "error: " in refused.stderr, refused.stderr
    assert not (root / "aml_config" / "hdi.compute").exists()
    done = attach(head_rig["password"])
    assert done.returncode == 0, done.stderr
    assert "connected: " in done.stdout and "spark-submit" in done.stdout, done.stdout
    compute = (root / "aml_config" / "hdi.compute").read_text()
    assert 'type: "cluster"' in compute and f'address: "{where}"' in compute
    assert head_rig["password"] not in compute and "password: " in compute  # a reference
    assert 'Framework: "PySpark"' in (root / "aml_config" / "hdi.runconfig").read_text()

    project = HeadProject(root)
    project.env = head_project.env
    project.write("hello.py", "from azureml.logging import get_azureml_logger\n"
                              "get_azureml_logger().log('Answer', 42)\nprint('hello')\n")
    runs = []
    for _ in range(2):
        res = project.cli("submit", "-c", "hdi", "hello.py", timeout=300)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        runs.append(res.stdout.splitlines()[0].strip())
        if len(runs) == 1:  # the first run's folder waits there as the project's tree
            root_there = json.loads((last_run_dir(project) / "spark.json").read_text())["root"]
            tree = os.path.join(os.path.dirname(root_there), ".tree")
            assert head_sh(head_rig, f"ls -d {tree}").strip() == tree
    assert _json(project, "runs", "show", runs[1])["metrics"]["Answer"] == 42
    log = (last_run_dir(project) / "log").read_text()
    kept = re.search(r" sys sync: \d+ of \d+ distinct files sent \(\d+ bytes; (\d+) kept", log)
    assert kept is not None and int(kept.group(1)) > 0, log[:3000]
