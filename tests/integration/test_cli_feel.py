"""The CLI's feel (issue 12, item 8): shell completion through click's protocol in a real
process, colours on a terminal (a real pty) and none when piped or with NO_COLOR, flags that
contradict each other refused in one line."""

from __future__ import annotations

import json
import os
import pty
import subprocess

import pytest

from tests.conftest import Project, cli_argv, cli_env


@pytest.fixture
def proj(project: Project) -> Project:
    project.write("hello.py", "print('hi')\n")
    project.write("nb.ipynb", "{}")
    project.write("data.txt", "x")
    project.write("src/train.py", "pass\n")
    project.write("aml_config/docker.compute", 'type: "docker"\n')
    project.write("aml_config/gpu.runconfig", 'Target: "docker"\nFramework: "Python"\n')
    return project


def complete(project: Project, words: str, shell: str = "bash") -> list[str]:
    """Candidates for the last word of ``words``, asked as the shell's script asks."""
    parts = words.split(" ")
    env = {"_LABDECK_COMPLETE": f"{shell}_complete", "COMP_WORDS": words,
           "COMP_CWORD": str(len(parts) - 1)}
    res = project.cli(env=env)
    assert res.returncode == 0, res.stderr
    if shell == "zsh":  # type, value, help: three lines a candidate
        lines = res.stdout.splitlines()
        return [f"{lines[i + 1]}|{lines[i + 2]}" for i in range(0, len(lines), 3)]
    return [line.split(",", 1)[1] for line in res.stdout.splitlines()]


def test_completion_of_targets_runs_sweeps_and_scripts(proj: Project) -> None:
    first = proj.cli("submit", "--name", "baseline", "hello.py", check=True).stdout.split()[0]
    second = proj.cli("submit", "hello.py", check=True).stdout.split()[0]
    sweep = proj.cli("sweep", "hello.py", "--grid", "rate=1", check=True).stdout.split()[0]
    assert complete(proj, "labdeck submit -c ") == ["docker", "gpu", "local"]
    assert complete(proj, "labdeck prepare --target d") == ["docker"]
    assert complete(proj, "labdeck target show g") == ["gpu"]
    assert complete(proj, "labdeck runs list --target l") == ["local"]
    runs = complete(proj, "labdeck runs show ")
    assert set(runs) >= {"baseline", first, second} and runs.index(second) < runs.index(first)
    assert complete(proj, "labdeck runs logs -f base") == ["baseline"]
    assert complete(proj, f"labdeck runs cancel {first} {second[:-2]}") == [second]
    assert complete(proj, "labdeck runs diff baseline bas") == ["baseline"]  # another module's verb
    assert complete(proj, "labdeck experiment cancel -r base") == ["baseline"]
    assert complete(proj, "labdeck sweep show ") == [sweep]
    assert complete(proj, "labdeck submit -c local ") == ["aml_config/", "hello.py", "nb.ipynb",
                                                          "src/"]
    assert complete(proj, "labdeck submit src/") == ["src/train.py"]
    assert complete(proj, "labdeck sweep start h") == ["hello.py"]
    zsh = complete(proj, "labdeck runs show base", "zsh")
    assert zsh == [f"baseline|{first} completed hello.py"]
    assert complete(proj, "labdeck ru") == ["runs"]


def test_completion_scripts_install_for_each_shell(proj: Project) -> None:
    for shell in ("bash", "zsh", "fish"):
        printed = proj.cli("completion", shell, check=True).stdout
        sourced = proj.cli(env={"_LABDECK_COMPLETE": f"{shell}_source"}).stdout
        assert printed.strip() == sourced.strip()
        assert f"{shell}_complete" in printed
    helped = proj.cli("completion", "--help", check=True).stdout
    assert 'eval "$(_LABDECK_COMPLETE=bash_source labdeck)"' in helped
    assert "_LABDECK_COMPLETE=fish_source labdeck" in helped


def on_a_terminal(project: Project, *args: str, env: dict[str, str] | None = None,
                  stream: str = "stdout") -> tuple[int, str]:
    """Run the CLI with ``stream`` a real terminal (a pty), the other one piped."""
    master, slave = pty.openpty()
    pipes: dict[str, int] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    pipes[stream] = slave
    proc = subprocess.Popen(cli_argv(*args), cwd=project.root, env=cli_env(env),
                            stdout=pipes["stdout"], stderr=pipes["stderr"])
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other end closed
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    proc.communicate(timeout=60)
    return proc.wait(timeout=60), seen.decode()


def test_colours_on_a_terminal_none_when_piped_or_no_color(proj: Project) -> None:
    proj.cli("submit", "hello.py", check=True)
    proj.write("bad.py", "raise SystemExit(3)\n")
    proj.cli("submit", "bad.py")
    code, shown = on_a_terminal(proj, "runs", "list", env={"NO_COLOR": "", "TERM": "xterm"})
    assert code == 0
    assert "\x1b[32mcompleted\x1b[0m" in shown and "\x1b[31mfailed\x1b[0m" in shown
    lines = shown.splitlines()
    assert lines[1].index("  local") == lines[2].index("  local")  # colour takes no width
    code, shown = on_a_terminal(proj, "runs", "show", "nosuch", stream="stderr",
                                env={"TERM": "xterm"})
    assert code == 2 and "\x1b[1;31mlabdeck: error:\x1b[0m no run 'nosuch'" in shown
    _, no_color = on_a_terminal(proj, "runs", "list", env={"NO_COLOR": "1"})
    assert "completed" in no_color and "\x1b[" not in no_color
    piped = proj.cli("runs", "list", env={"TERM": "xterm"})
    assert "completed" in piped.stdout and "\x1b[" not in piped.stdout
    err = proj.cli("runs", "show", "nosuch", env={"TERM": "xterm"})
    assert err.stderr == "labdeck: error: no run 'nosuch' in this project\n"


@pytest.mark.parametrize(("args", "says"), [
    (["submit", "--watch", "-a", "hello.py"], "--watch and -a/--async do not go together"),
    (["submit", "--watch", "--explain", "hello.py"], "--watch and --explain"),
    (["submit", "--watch", "--tag", "k=v", "hello.py"], "--watch and --name/--tag/--note"),
    (["submit", "--policy", "queue", "hello.py"], "--policy applies with --watch only"),
    (["experiment", "submit", "--policy", "cancel", "hello.py"], "--policy applies with"),
    (["submit", "--explain", "-a", "hello.py"], "--explain and -a/--async"),
    (["submit", "--explain", "--name", "x", "hello.py"], "--explain and --name/--tag/--note"),
    (["sweep", "hello.py", "--grid", "rate=1", "--seed", "3"], "--seed goes with --random"),
    (["target", "attach", "local", "--name", "x", "--gpus", "all"], "--gpus: not used by a local"),
    (["target", "attach", "docker", "--name", "x", "--username", "u"], "--username: not used"),
    (["runs", "list", "-n", "0"], "0 is not in the range x>=1"),
    (["runs", "list", "--bogus"], "No such option '--bogus'"),
    (["runs", "lst"], "No such command 'lst'"),
])
def test_conflicting_or_unused_flags_are_one_line_errors(proj: Project, args: list[str],
                                                         says: str) -> None:
    res = proj.cli(*args)
    assert res.returncode == 2, res
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("labdeck: error: ") and says in lines[0], lines
    assert "--help" in lines[0]  # the line names where to read more
    assert json.loads(proj.cli("runs", "list", "-o", "json", check=True).stdout) == []
    assert not (proj.root / "aml_config" / "x.compute").exists()
