"""Issue 8's "Done when", walked through as a new user would, through the CLI only: a copy of
sample_project/, the rig's host attached with a password (its unknown host key refused, then
accepted) and then with a key, ``prepare``, the churn sample submitted there while the SSH
session is cut mid-run, the log complete (each line of the local run's output, once, in order)
and both accuracies in ``runs compare`` beside a local run of the same script; then
``target detach``. The walk-through's transcript is /work/notes/walkthrough8.md."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.conftest import Project, cli_argv, cli_env
from tests.docker.conftest import record, run_id_of
from tests.remote.conftest import Client, RemoteProject, Rig, until, wait_no_containers

pytestmark = pytest.mark.docker

CHURN = "CATelcoCustomerChurnModelingWithoutDprep.py"
ACCURACIES = ("Naive Bayes Accuracy", "DTree Accuracy")


def attach(project: RemoteProject, *args: str,
           stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_argv("target", "attach", "remotedocker", "--name", "vm", *args),
                          cwd=project.root, env=cli_env(project.env), input=stdin, text=True,
                          capture_output=True, timeout=120)


def log_lines(project: Project, run_id: str) -> list[str]:
    path = project.root / ".labdeck" / "runs" / run_id / "log"
    return path.read_text().splitlines() if path.exists() else []


def script_output(project: Project, run_id: str) -> list[str]:
    """The script's stdout lines in the run's log, its timing line without the figure."""
    outs = [line.split(" out ", 1)[1] for line in log_lines(project, run_id) if " out " in line]
    return [re.sub(r"finished in [0-9.]+s", "finished in Xs", text) for text in outs]


def run_ids(project: Project) -> set[str]:
    runs = project.root / ".labdeck" / "runs"
    return {p.name for p in runs.iterdir()} if runs.is_dir() else set()


def first_new_run(project: Project, before: set[str]) -> str:
    found: list[str] = []

    def seen() -> bool:
        found.extend(run_ids(project) - before)
        return bool(found)

    assert until(seen, 120), "the submit made no run"
    return found[0]


def test_done_when_walkthrough(sample_copy: Project, rig: Rig, client: Client) -> None:
    proj = RemoteProject(sample_copy.root)
    proj.env = client.env
    client.known_hosts("")  # a new user: this host's key is not known yet
    key = client.home / ".ssh" / "rig_key"
    shutil.copy(rig.identity_file, key)
    key.chmod(0o600)
    shutil.rmtree(proj.root / "data", ignore_errors=True)  # the run makes it (and says so)
    compute = proj.root / "aml_config" / "vm.compute"
    login = ["--address", rig.address, "--username", rig.user]

    # 1. With a password: the unknown host key is refused (its fingerprint and the command that
    #    accepts it), nothing written; then accepted. The password stays outside the project.
    res = attach(proj, *login, "--password-stdin", stdin=rig.password + "\n")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "unknown host key" in res.stderr and "--accept-new-host-key" in res.stderr
    assert not compute.exists()
    res = attach(proj, *login, "--password-stdin", "--accept-new-host-key",
                 stdin=rig.password + "\n")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "connected: docker " in res.stdout and "latency" in res.stdout
    assert f"password kept in {client.secrets}" in res.stdout
    assert rig.password not in compute.read_text() and "LabdeckSecret=" in compute.read_text()
    show = proj.cli("target", "show", "vm")
    assert show.returncode == 0 and "reachable:    yes (docker " in show.stdout, show.stdout

    # 2. With a key instead (--force): the password the old file named is forgotten.
    res = attach(proj, *login, "--identity-file", str(key), "--force")
    assert res.returncode == 0, res.stdout + res.stderr
    assert str(key) in compute.read_text() and "password" not in compute.read_text()
    assert rig.password not in client.secrets.read_text()

    # 3. prepare: the sample's environment (scikit-learn, pandas) built by the rig's daemon.
    res = proj.cli("prepare", "-c", "vm", timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "prepared vm: labdeck-env/shared:" in res.stdout

    # 4. The same script on this machine, for the comparison.
    res = proj.cli("submit", "-c", "local", CHURN, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    local_id = run_id_of(res.stdout)
    expected = script_output(proj, local_id)
    assert any(text.startswith("DTree Accuracy is") for text in expected), expected

    # 5. On the rig, followed by the client as a user would, the SSH session cut mid-run.
    before = run_ids(proj)
    follower = proj.popen("submit", "-c", "vm", CHURN)
    try:
        remote_id = first_new_run(proj, before)
        assert until(lambda: any(" out Generating" in ln for ln in log_lines(proj, remote_id)),
                     240), log_lines(proj, remote_id)
        killed = rig.sh(f"pkill -KILL -f '^sshd: {rig.user}@notty'")
        assert killed.returncode == 0, killed.stderr
        out, err = follower.communicate(timeout=300)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    assert follower.returncode == 0, out + err
    log = log_lines(proj, remote_id)
    lost = next(i for i, ln in enumerate(log) if " sys the SSH link to " in ln and "was lost" in ln)
    back = next(i for i, ln in enumerate(log) if " sys the SSH link to " in ln and
                " is back after " in ln)
    saved = next(i for i, ln in enumerate(log) if " out Saved outputs/model.pkl" in ln)
    assert lost < back < saved, "\n".join(log)  # the cut came while the script ran
    assert script_output(proj, remote_id) == expected, "\n".join(log)  # nothing lost or twice
    assert "was lost; reconnecting" in err and " is back after " in err  # the follower said so
    rec = record(proj, remote_id)
    assert rec["status"] == "completed" and rec["outputs"] == ["model.pkl"], rec

    # 6. Both accuracies side by side.
    res = proj.cli("runs", "compare", local_id, remote_id)
    assert res.returncode == 0, res.stdout + res.stderr
    local = record(proj, local_id)["metrics"]
    remote = rec["metrics"]
    assert isinstance(local, dict) and isinstance(remote, dict)
    for name in ACCURACIES:
        row = next(ln for ln in res.stdout.splitlines() if ln.startswith(name))
        values = [float(v) for v in row[len(name):].split()]
        assert values == [round(float(local[name]), 4), round(float(remote[name]), 4)], row
        assert 0.5 < values[1] <= 1.0
    header = res.stdout.splitlines()[0]
    assert header.split() == [local_id, remote_id]

    # 7. Detach: the files go; nothing of the run is left on the rig.
    res = proj.cli("target", "detach", "vm")
    assert res.returncode == 0, res.stderr
    assert not compute.exists() and not (proj.root / "aml_config" / "vm.runconfig").exists()
    assert wait_no_containers(rig, proj) == []
