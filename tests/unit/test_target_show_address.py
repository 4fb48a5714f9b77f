"""``target show``'s address line: a port written in the address is the port (it showed
"labdeck@127.0.0.1:32768:22", the compute's default port appended to an address that had one)."""

from __future__ import annotations

import pytest

from tests.conftest import Project


@pytest.mark.parametrize("address, port, shown", [
    ("127.0.0.1:32768", None, "labdeck@127.0.0.1:32768"),
    ("vm.invalid", None, "labdeck@vm.invalid"),
    ("vm.invalid", "2200", "labdeck@vm.invalid:2200"),
    ("[::1]:2222", None, "labdeck@[::1]:2222"),
])
def test_address_shown_once_with_its_port(project: Project, address: str, port: str | None,
                                          shown: str) -> None:
    extra = f'port: "{port}"\n' if port else ""
    project.write("aml_config/vm.compute", f'type: "remotedocker"\naddress: "{address}"\n'
                  f'username: "labdeck"\nprivateKeyFile: "/nonexistent"\n{extra}')
    res = project.cli("target", "show", "vm", env={"HOME": str(project.root)})
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"address:      {shown}\n" in res.stdout, res.stdout


def test_workbench_spelling_has_detach_and_show(project: Project) -> None:
    """``computetarget detach`` (Workbench's own verb) answered "No such command"."""
    res = project.cli("computetarget", "attach", "docker", "--name", "box", check=True)
    res = project.cli("computetarget", "show", "box", env={"HOME": str(project.root)})
    assert res.returncode == 0 and "type:         docker" in res.stdout, res.stdout + res.stderr
    res = project.cli("computetarget", "detach", "box")
    assert res.returncode == 0, res.stderr
    assert not (project.root / "aml_config" / "box.compute").exists()
