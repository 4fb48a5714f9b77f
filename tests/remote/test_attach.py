"""``target attach remotedocker`` against the rig's real sshd: what works, and each failure as
one line naming it, with nothing written."""

from __future__ import annotations

import os
import stat

import pytest

from tests.conftest import Project
from tests.remote.conftest import Client, RemoteProject, Rig

pytestmark = pytest.mark.docker

OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB3Ndd/TPgW3yTU64OtAbh4YqGmLgn9wV4Axc/YpjN0R"


def files(project: Project) -> set[str]:
    return {p.name for p in (project.root / "aml_config").iterdir()}


def attach(project: RemoteProject, *args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    import subprocess

    from tests.conftest import cli_argv, cli_env

    proc = subprocess.run(cli_argv("target", "attach", "remotedocker", *args), cwd=project.root,
                          env=cli_env(project.env), input=stdin, text=True,
                          capture_output=True, timeout=60)
    return proc


@pytest.fixture
def bare(rproject: RemoteProject) -> RemoteProject:
    for name in ("rig.compute", "rig.runconfig"):
        (rproject.root / "aml_config" / name).unlink()
    return rproject


def test_attach_with_key_prints_engine_and_latency(bare: RemoteProject, rig: Rig) -> None:
    res = attach(bare, "--name", "vm", "--address", rig.address, "--username", rig.user,
                 "--identity-file", rig.identity_file)
    assert res.returncode == 0, res.stderr
    assert "docker 20." in res.stdout or "docker " in res.stdout
    assert "socket forwarded" in res.stdout and "latency" in res.stdout
    assert "GPUs: none" in res.stdout and "no nvidia-smi on the host" in res.stdout
    text = (bare.root / "aml_config" / "vm.compute").read_text()
    assert 'type: "remotedocker"' in text and rig.identity_file in text
    assert "password" not in text


def test_attach_with_password_keeps_it_outside_and_detach_forgets_it(
        bare: RemoteProject, rig: Rig, client: Client) -> None:
    res = attach(bare, "--name", "vm", "--address", rig.address, "--username", rig.user,
                 "--password-stdin", stdin=rig.password + "\n")
    assert res.returncode == 0, res.stderr
    compute = (bare.root / "aml_config" / "vm.compute").read_text()
    assert rig.password not in compute and "LabdeckSecret=" in compute
    assert rig.password in client.secrets.read_text()
    assert stat.S_IMODE(os.stat(client.secrets).st_mode) == 0o600
    # The password read back from the secrets file logs in (no key is offered at all).
    res = bare.cli("target", "show", "vm")
    assert res.returncode == 0 and "docker " in res.stdout, res.stdout + res.stderr
    res = bare.cli("target", "detach", "vm")
    assert res.returncode == 0, res.stderr
    assert rig.password not in client.secrets.read_text()


def test_ssh_config_alias_supplies_host_port_user_and_key(bare: RemoteProject, rig: Rig,
                                                          client: Client) -> None:
    (client.home / ".ssh" / "config").write_text(
        f"Host rigalias\n  HostName {rig.host}\n  Port {rig.port}\n  User {rig.user}\n"
        f"  IdentityFile {rig.identity_file}\n")
    res = attach(bare, "--name", "vm", "--address", "rigalias")
    assert res.returncode == 0, res.stderr
    assert "on rigalias via SSH" in res.stdout


def test_unknown_host_key_refused_with_fingerprint_then_accepted(
        bare: RemoteProject, rig: Rig, client: Client) -> None:
    client.known_hosts("")
    args = ["--name", "vm", "--address", rig.address, "--username", rig.user,
            "--identity-file", rig.identity_file]
    res = attach(bare, *args)
    assert res.returncode == 1
    assert len(res.stderr.strip().splitlines()) == 1
    assert "unknown host key" in res.stderr and "SHA256:" in res.stderr
    assert "--accept-new-host-key" in res.stderr
    assert files(bare) == {"local.compute"}
    res = attach(bare, *args, "--accept-new-host-key")
    assert res.returncode == 0, res.stderr
    assert rig.host_key in (client.home / ".ssh" / "known_hosts").read_text()


def test_changed_host_key_always_refused(bare: RemoteProject, rig: Rig, client: Client) -> None:
    client.known_hosts(f"[{rig.host}]:{rig.port} {OTHER_KEY}\n")
    res = attach(bare, "--name", "vm", "--address", rig.address, "--username", rig.user,
                 "--identity-file", rig.identity_file, "--accept-new-host-key")
    assert res.returncode == 1
    assert "CHANGED" in res.stderr and "ssh-keygen -R" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert files(bare) == {"local.compute"}
    assert OTHER_KEY in (client.home / ".ssh" / "known_hosts").read_text()  # left as it was


@pytest.mark.parametrize("user, password, expect", [
    ("labdeck", "wrong-password", "authentication failed for labdeck@"),
    ("nodocker", None, "may not use the Docker socket"),
])
def test_login_and_docker_access_failures(bare: RemoteProject, rig: Rig, user: str,
                                          password: str | None, expect: str) -> None:
    if password is None:
        res = attach(bare, "--name", "vm", "--address", rig.address, "--username", user,
                     "--identity-file", rig.identity_file)
    else:
        res = attach(bare, "--name", "vm", "--address", rig.address, "--username", user,
                     "--password-stdin", stdin=password + "\n")
    assert res.returncode == 1
    assert expect in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert files(bare) == {"local.compute"}


def test_forwarding_refused_falls_back_to_dial_stdio(bare: RemoteProject, rig: Rig) -> None:
    res = attach(bare, "--name", "vm", "--address", rig.address, "--username", rig.nofwd_user,
                 "--identity-file", rig.identity_file)
    assert res.returncode == 0, res.stderr
    assert "docker system dial-stdio (sshd refuses stream-local forwarding)" in res.stdout


def test_unreachable_addresses_name_what_failed(bare: RemoteProject) -> None:
    res = attach(bare, "--name", "vm", "--address", "no-such-host.invalid", "--username", "u")
    assert res.returncode == 1 and "cannot resolve the host name" in res.stderr
    res = attach(bare, "--name", "vm", "--address", "127.0.0.1:1", "--username", "u")
    assert res.returncode == 1 and "refused" in res.stderr
    assert files(bare) == {"local.compute"}


BAD = [
    (["--name", "bad name", "--address", "h"], "target name"),
    (["--name", "vm"], "needs --address"),
    (["--name", "vm", "--address", "h:0"], "port must be"),
    (["--name", "vm", "--address", "h:http"], "port must be"),
    (["--name", "vm", "--address", "-oProxyCommand=x"], "not a host name"),
    (["--name", "vm", "--address", "h", "--username", "a b"], "not a user name"),
    (["--name", "vm", "--address", "h", "--identity-file", "/no/such/key"], "no such file"),
    (["--name", "vm", "--address", "h", "--identity-file", "/etc/hostname", "--password-stdin"],
     "not both"),
    (["--name", "vm", "--address", "h", "--password-stdin"], "is empty"),
    (["--name", "vm", "--address", "h", "--password", "secret"], "--password-stdin"),
    (["--name", "vm", "--address", "h", "--base-image", "a b"], "not an image reference"),
    (["--name", "vm", "--address", "h", "--gpus", "many"], "gpus"),
    (["--name", "vm", "--address", "h", "--shared-volumes"], "docker targets only"),
    (["--name", "local", "--address", "h"], "exists"),
    (["--name", "vm", "--address", "tcp://h:2375"], "give HOST[:PORT]"),
    (["--name", "vm", "--address", "root@h", "--username", "u"], "give one of them"),
]


@pytest.mark.parametrize("args, expect", BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)])
def test_bad_inputs_one_line_exit_2_nothing_written(bare: RemoteProject, args: list[str],
                                                    expect: str, client: Client) -> None:
    (bare.root / "aml_config" / "local.compute").write_text('type: "local"\n')
    res = attach(bare, *args, stdin="\n")
    assert res.returncode == 2, res.stdout + res.stderr
    assert expect in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert files(bare) == {"local.compute"}
    assert not client.secrets.exists()


def test_fresh_attach_then_submit_works_out_of_the_box(bare: RemoteProject, rig: Rig) -> None:
    """The runconfig attach writes names aml_config/conda_dependencies.yml: a project without
    one gets a minimal one, so the first submit does not fail on a file attach never wrote
    (it did before); an existing one is left alone."""
    res = attach(bare, "--name", "vm", "--address", rig.address, "--username", rig.user,
                 "--identity-file", rig.identity_file)
    assert res.returncode == 0, res.stderr
    assert "conda_dependencies.yml" in res.stdout
    bare.write("hello.py", "print('hello from the attached host')\n")
    res = bare.cli("submit", "-c", "vm", "hello.py", timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "hello from the attached host" in res.stdout
    # The local docker attach writes the same runconfig: the same minimal file serves it,
    # and an existing file is never overwritten.
    deps = bare.root / "aml_config" / "conda_dependencies.yml"
    deps.write_text("dependencies: []  # mine\n")
    res = bare.cli("target", "attach", "docker", "--name", "d1")
    assert res.returncode == 0, res.stderr
    assert deps.read_text() == "dependencies: []  # mine\n"
    res = bare.cli("submit", "-c", "d1", "--explain", "hello.py")
    assert res.returncode == 0, res.stderr


def test_shared_volumes_on_a_remote_target_is_refused_with_file_and_line(
        rproject: RemoteProject, rig: Rig) -> None:
    compute = rproject.root / "aml_config" / "rig.compute"
    compute.write_text(compute.read_text() + "sharedVolumes: true\n")
    line = compute.read_text().splitlines().index("sharedVolumes: true") + 1
    rproject.write("hello.py", "print(1)\n")
    for args in (["submit", "-c", "rig", "--explain", "hello.py"], ["prepare", "-c", "rig"]):
        res = rproject.cli(*args)
        assert res.returncode == 2, res.stdout + res.stderr
        assert f"rig.compute:{line}: sharedVolumes: true is not possible" in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_identity_file_that_is_not_a_usable_private_key_is_one_line_exit_2(
        bare: RemoteProject, rig: Rig, client: Client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A new user's commonest slips: the .pub file, some other file, a key with a passphrase
    (never prompted for). Each was exit 1 with asyncssh's own words ("Invalid private key")."""
    import subprocess

    encrypted = tmp_path / "enc_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(encrypted)],
                   check=True)
    cases = [(rig.identity_file + ".pub", f"is a public key: give the private key "
                                          f"({rig.identity_file})"),
             ("/etc/hostname", "is not a private key"),
             (str(encrypted), "protected by a passphrase")]
    before = files(bare)
    for key, expect in cases:
        res = attach(bare, "--name", "vm", "--address", rig.address, "--username", rig.user,
                     "--identity-file", key)
        assert res.returncode == 2, res.stdout + res.stderr
        assert expect in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert files(bare) == before
        assert not client.secrets.exists()


def test_reattach_with_a_key_forgets_the_password_the_old_file_named(
        bare: RemoteProject, rig: Rig, client: Client) -> None:
    """Password first, then --force with a key (the walk-through's order): the old password
    left in the secrets file, referenced by nothing (a later detach could not remove it)."""
    res = attach(bare, "--name", "vm", "--address", rig.address, "--username", rig.user,
                 "--password-stdin", stdin=rig.password + "\n")
    assert res.returncode == 0, res.stderr
    assert rig.password in client.secrets.read_text()
    res = attach(bare, "--name", "vm", "--address", rig.address, "--username", rig.user,
                 "--identity-file", rig.identity_file, "--force")
    assert res.returncode == 0, res.stderr
    assert "password" not in (bare.root / "aml_config" / "vm.compute").read_text()
    assert rig.password not in client.secrets.read_text()
    # and a password again after a key: kept, and found by the next command
    res = attach(bare, "--name", "vm", "--address", rig.address, "--username", rig.user,
                 "--password-stdin", "--force", stdin=rig.password + "\n")
    assert res.returncode == 0, res.stderr
    assert rig.password in client.secrets.read_text()
    assert bare.cli("target", "show", "vm").returncode == 0


def test_workbench_password_reference_says_the_exact_command_that_re_enters_it(
        bare: RemoteProject) -> None:
    """The sample's myvm: the line names its own address and user (it said HOST and USER)."""
    bare.write("aml_config/myvm.compute", """
        type: "remotedocker"
        address: "myvm.invalid"
        username: "azureuser"
        password: "AzureMlSecret=myvm#azureuser#0f3c9a7e"
    """)
    res = bare.cli("prepare", "-c", "myvm")
    assert res.returncode == 1, res.stdout + res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert ("echo PASSWORD | labdeck target attach remotedocker --name myvm --address "
            "myvm.invalid --username azureuser --password-stdin --force") in last, last


@pytest.mark.parametrize("form", ["{user}@{address}", "ssh://{user}@{address}"])
def test_address_may_carry_the_user_as_ssh_and_docker_h_take_it(bare: RemoteProject, rig: Rig,
                                                                 form: str) -> None:
    """user@host:port (ssh's form) and ssh://user@host:port (docker -H's) were taken whole for
    a host name: "cannot resolve the host name 'labdeck@127.0.0.1'"."""
    address = form.format(user=rig.user, address=rig.address)
    res = attach(bare, "--name", "vm", "--address", address, "--identity-file",
                 rig.identity_file)
    assert res.returncode == 0, res.stdout + res.stderr
    text = (bare.root / "aml_config" / "vm.compute").read_text()
    assert f'address: "{rig.address}"' in text and f'username: "{rig.user}"' in text


def test_password_stdin_at_a_terminal_is_asked_for_without_echo(bare: RemoteProject,
                                                                rig: Rig) -> None:
    """The host-key refusal prints a command with --password-stdin; run as it is at a terminal,
    the password was read with echo on (shown on the screen)."""
    import pty
    import select
    import signal

    from tests.conftest import cli_argv, cli_env

    argv = cli_argv("target", "attach", "remotedocker", "--name", "vm", "--address",
                    rig.address, "--username", rig.user, "--password-stdin")
    env = cli_env(bare.env)
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its terminal
        os.chdir(bare.root)
        os.execve(argv[0], argv, env)
    seen = b""
    sent = False
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 20)
            assert ready, seen.decode(errors="replace")
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            if not sent and b"password for " in seen:
                os.write(fd, rig.password.encode() + b"\n")
                sent = True
    finally:
        done, status = os.waitpid(pid, os.WNOHANG)
        if not done:  # still waiting for a password it never asked for: end it
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        os.close(fd)
    text = seen.decode(errors="replace")
    assert sent and os.waitstatus_to_exitcode(status) == 0, text
    assert rig.password not in text  # not echoed
    assert "connected: docker " in text
    assert "LabdeckSecret=" in (bare.root / "aml_config" / "vm.compute").read_text()
