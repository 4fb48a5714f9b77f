"""Every CLI verb against real processes on the local target."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import Project, stand_in_nvidia_smi

HELLO = """
    import os, sys
    from azureml.logging import get_azureml_logger
    log = get_azureml_logger()
    print("args:", " ".join(sys.argv[1:]))
    print("env:", os.environ.get("GREETING", "-"))
    print("to stderr", file=sys.stderr)
    log.log("accuracy", float(sys.argv[1]) if len(sys.argv) > 1 else 0.5)
    for step in (0.9, 0.5):
        log.log("loss", step)
    os.makedirs("outputs/sub", exist_ok=True)
    open("outputs/model.txt", "w").write("model")
    open("outputs/sub/extra.txt", "w").write("extra")
"""


@pytest.fixture
def hello(project: Project) -> Project:
    project.write("hello.py", HELLO)
    project.write(
        "aml_config/local.runconfig",
        """
        ArgumentVector:
          - "$file"
        Target: "local"
        Framework: "Python"
        EnvironmentVariables:
          GREETING: "hej"
    """,
    )
    return project


def run_json(project: Project, *args: str) -> dict:
    res = project.cli(*args, "-o", "json", check=True)
    return json.loads(res.stdout)


def submit_ok(project: Project, *args: str) -> str:
    res = project.cli("submit", "-c", "local", "hello.py", *args, check=True)
    return res.stdout.splitlines()[0]


def test_submit_streams_log_and_exits_with_script_status(hello: Project) -> None:
    res = hello.cli("submit", "-c", "local", "hello.py", "0.75", "--flag")
    assert res.returncode == 0, res.stderr
    out = res.stdout.splitlines()
    assert out[0].startswith("proj_")
    assert "args: 0.75 --flag" in out
    assert "env: hej" in out
    assert "to stderr" in res.stderr
    assert "[metric] accuracy = 0.75" in res.stdout
    hello.write("fail.py", "import sys; print('bye'); sys.exit(3)\n")
    failed = hello.cli("submit", "-c", "local", "fail.py")
    assert failed.returncode == 3
    assert "failed (exit code 3)" in failed.stderr


def test_submit_async_returns_at_once_and_run_finishes(hello: Project) -> None:
    hello.write("slow.py", "import time; time.sleep(1.5); print('done')\n")
    res = hello.cli("submit", "-a", "-c", "local", "slow.py", check=True)
    run_id = res.stdout.strip()
    assert run_json(hello, "runs", "show", run_id)["status"] in {"queued", "preparing", "running"}
    follow = hello.cli("runs", "logs", run_id, "-f", check=True)
    assert "done" in follow.stdout
    assert run_json(hello, "runs", "show", run_id)["status"] == "completed"


def test_explain_prints_command_folder_and_env_without_running(hello: Project) -> None:
    res = hello.cli("submit", "--explain", "-c", "local", "hello.py", "a b", check=True)
    assert "hello.py 'a b'" in res.stdout
    assert "export GREETING=hej" in res.stdout
    assert "export PYTHONPATH=" in res.stdout
    assert "cd " in res.stdout
    assert hello.cli("runs", "list", "-o", "json").stdout.strip() in ("", "[]")


def test_runs_show_last_list_json_fields(hello: Project) -> None:
    run_id = submit_ok(hello, "0.8")
    shown = run_json(hello, "runs", "show", run_id)
    for field in (
        "id",
        "status",
        "target",
        "script",
        "args",
        "created",
        "started",
        "ended",
        "exit_code",
        "metrics",
        "outputs",
        "snapshot",
        "commit",
    ):
        assert field in shown
    assert shown["status"] == "completed"
    assert shown["metrics"] == {"accuracy": 0.8, "loss": [0.9, 0.5]}
    assert shown["outputs"] == ["model.txt", "sub/extra.txt"]
    assert len(shown["snapshot"]) == 64
    assert run_json(hello, "runs", "last")["id"] == run_id
    listed = run_json(hello, "runs", "list")
    assert [r["id"] for r in listed] == [run_id]
    table = hello.cli("runs", "list", check=True).stdout
    assert run_id in table and "completed" in table


def test_runs_logs_prints_whole_log_with_streams(hello: Project) -> None:
    run_id = submit_ok(hello)
    res = hello.cli("runs", "logs", run_id, check=True)
    assert "args:" in res.stdout
    assert "to stderr" in res.stderr
    stamped = hello.cli("runs", "logs", run_id, "--timestamps", check=True)
    assert stamped.stdout.splitlines()[0][:4].isdigit()
    tail = hello.cli("runs", "logs", run_id, "--tail", "1", check=True)
    assert len((tail.stdout + tail.stderr).strip().splitlines()) == 1


def test_download_copies_outputs(hello: Project, tmp_path: Path) -> None:
    run_id = submit_ok(hello)
    dest = tmp_path / "dl"
    hello.cli("runs", "download", run_id, "-d", str(dest), check=True)
    assert (dest / "model.txt").read_text() == "model"
    assert (dest / "sub" / "extra.txt").read_text() == "extra"
    default = hello.cli("history", "download", run_id, check=True)
    assert (hello.root / "downloads" / run_id / "model.txt").is_file(), default.stdout
    # Never into the project's outputs/: a later run (sharedVolumes) would take it as its own.
    inside = hello.cli("runs", "download", run_id, "-d", str(hello.root / "outputs" / "x"))
    assert inside.returncode == 2 and "inside the project's outputs/" in inside.stderr
    assert not (hello.root / "outputs" / "x").exists()
    own = hello.root / ".labdeck" / "runs" / run_id / "outputs"
    same = hello.cli("runs", "download", run_id, "-d", str(own))
    assert same.returncode == 2 and "the run's own outputs folder" in same.stderr
    assert (own / "model.txt").read_text() == "model"  # not emptied


def test_compare_puts_metrics_side_by_side(hello: Project) -> None:
    a = submit_ok(hello, "0.6")
    b = submit_ok(hello, "0.9")
    res = hello.cli("runs", "compare", a, b, check=True)
    row = next(line for line in res.stdout.splitlines() if line.startswith("accuracy"))
    assert "0.6" in row and "0.9" in row
    both = json.loads(hello.cli("history", "compare", a, b, "-o", "json", check=True).stdout)
    assert [r["metrics"]["accuracy"] for r in both] == [0.6, 0.9]
    one = hello.cli("runs", "compare", a)
    assert one.returncode == 2


def test_cancel_stops_a_running_script_quickly(hello: Project) -> None:
    hello.write("forever.py", "import time\nprint('up', flush=True)\nwhile True: time.sleep(0.1)\n")
    run_id = hello.cli("submit", "-a", "-c", "local", "forever.py", check=True).stdout.strip()
    _wait_status(hello, run_id, "running")
    start = time.monotonic()
    res = hello.cli("runs", "cancel", run_id, check=True)
    assert "canceled" in res.stdout
    assert time.monotonic() - start < 5
    shown = run_json(hello, "runs", "show", run_id)
    assert shown["status"] == "canceled"
    again = hello.cli("experiment", "cancel", "-r", run_id, check=True)
    assert "already canceled" in again.stdout


def test_prepare_local(hello: Project) -> None:
    res = hello.cli("prepare", "-c", "local", check=True)
    assert "prepared local" in res.stdout
    alias = hello.cli("experiment", "prepare", "-c", "local", check=True)
    assert "prepared local" in alias.stdout


def test_target_list_show_attach_detach(hello: Project) -> None:
    listed = json.loads(hello.cli("target", "list", "-o", "json", check=True).stdout)
    assert [t["name"] for t in listed] == ["local"]
    res = hello.cli(
        "target",
        "attach",
        "docker",
        "--name",
        "gpubox",
        "--gpus",
        "0,1",
        "--base-image",
        "labdeck/python-base:bookworm",
        check=True,
    )
    assert "gpubox.compute" in res.stdout
    text = (hello.root / "aml_config" / "gpubox.compute").read_text()
    assert 'type: "docker"' in text and 'gpus: "0,1"' in text
    assert (hello.root / "aml_config" / "gpubox.runconfig").is_file()
    dup = hello.cli("target", "attach", "docker", "--name", "gpubox")
    assert dup.returncode == 2 and "exists" in dup.stderr
    table = hello.cli("computetarget", "list", check=True).stdout
    assert "gpubox" in table and '"device=0,1"' in table
    shown = hello.cli("target", "show", "local", check=True).stdout
    assert "type:         local" in shown and "cancel" in shown
    hello.cli("computetarget", "attach", "local", "--name", "other", check=True)
    removed = hello.cli("target", "detach", "gpubox", check=True)
    assert "gpubox.compute" in removed.stdout
    assert not (hello.root / "aml_config" / "gpubox.compute").exists()
    missing = hello.cli("target", "detach", "gpubox")
    assert missing.returncode == 2 and "no target 'gpubox'" in missing.stderr


def test_workbench_aliases(hello: Project) -> None:
    res = hello.cli("experiment", "submit", "-c", "local", "hello.py", check=True)
    run_id = res.stdout.splitlines()[0]
    assert (
        json.loads(hello.cli("history", "info", run_id, "-o", "json", check=True).stdout)["id"]
        == run_id
    )
    assert json.loads(hello.cli("history", "last", "-o", "json", check=True).stdout)["id"] == run_id
    assert run_id in hello.cli("history", "list", check=True).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("submit", "-c", "nosuch", "hello.py"), "unknown target 'nosuch'"),
        (("submit", "-c", "local", "missing.py"), "script 'missing.py' not found"),
        (("runs", "show", "nope_1"), "no run 'nope_1'"),
        (("runs", "logs", "nope_1"), "no run 'nope_1'"),
        (("runs", "cancel", "nope_1"), "no run 'nope_1'"),
        (("runs", "last"), "no runs yet"),
        (("target", "show", "nosuch"), "unknown target 'nosuch'"),
        (("target", "attach", "docker", "--name", "bad name"), "target name 'bad name'"),
        (("target", "attach", "cluster", "--name", "hdi", "--address", "h.invalid",
          "--gpus", "all"), "not used by a cluster target"),
        (("target", "attach", "docker", "--name", "d", "--yarn-deploy-mode", "client"),
         "--yarn-deploy-mode: not used by a docker target"),
        (("target", "attach", "cluster", "--name", "hdi", "--address", "h.invalid",
          "--username", "u", "--password", "pw"), "--password on the command line is refused"),
        (
            ("--project", "/nonexistent/x", "runs", "list"),
            "--project /nonexistent/x: no such folder",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    hello: Project, args: tuple[str, ...], message: str
) -> None:
    res = hello.cli(*args)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.stderr


def test_outside_a_project(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    res = run_cli("runs", "list", cwd=tmp_path)
    assert res.returncode == 2
    assert "no aml_config/ folder" in res.stderr


def test_run_from_subfolder_finds_project(hello: Project) -> None:
    sub = hello.root / "src"
    sub.mkdir()
    (sub / "job.py").write_text("print('from src')\n")
    from tests.conftest import run_cli

    res = run_cli("submit", "-c", "local", "job.py", cwd=sub, check=True)
    assert "from src" in res.stdout
    assert json.loads(hello.cli("runs", "last", "-o", "json").stdout)["script"] == "src/job.py"


def _wait_status(project: Project, run_id: str, status: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = run_json(project, "runs", "show", run_id)
        if shown["status"] == status:
            return shown
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} never reached {status}: {shown}")


def test_native_shared_directory_is_shared_by_runs(project: Project, tmp_path: Path) -> None:
    share = tmp_path / "share"
    project.write("aml_config/local.compute", f'type: "local"\nnativeSharedDirectory: "{share}"\n')
    project.write("share.py", """
        import os, pathlib
        d = pathlib.Path(os.environ["AZUREML_NATIVE_SHARE_DIRECTORY"])
        n = len(list(d.iterdir()))
        (d / f"run{n}").write_text("x")
        print("seen", n)
    """)
    assert "seen 0" in project.cli("submit", "-c", "local", "share.py", check=True).stdout
    assert "seen 1" in project.cli("submit", "-c", "local", "share.py", check=True).stdout


def test_a_shared_directory_that_cannot_be_made_is_one_line(project: Project) -> None:
    project.write("aml_config/local.compute",
                  'type: "local"\nnativeSharedDirectory: "/proc/labdeck-no-such"\n')
    project.write("hello.py", "print('never')\n")
    res = project.cli("submit", "-c", "local", "hello.py")
    assert res.returncode == 1
    assert "cannot create nativeSharedDirectory /proc/labdeck-no-such" in res.stderr
    assert "internal error" not in res.stderr and "never" not in res.stdout


def test_target_show_local_lists_this_machines_gpus(project: Project, tmp_path: Path) -> None:
    smi = stand_in_nvidia_smi(tmp_path)
    shown = project.cli("target", "show", "local", env={"LABDECK_NVIDIA_SMI": str(smi)},
                        check=True).stdout
    assert "reachable:    yes (this machine)" in shown
    assert "[0] NVIDIA A100-SXM4-80GB  1024/81920 MiB  37% util" in shown
    assert "[1] NVIDIA A100-SXM4-80GB  0/81920 MiB  0% util" in shown
    none = project.cli("target", "show", "local",
                       env={"LABDECK_NVIDIA_SMI": str(tmp_path / "no-such-smi")}, check=True)
    assert "gpus:         none (nvidia-smi failed" in none.stdout
