"""A project file whose name is not UTF-8 reaches the container from the run's materialised
snapshot, bind-mounted or streamed in as an archive (issue 12, item 1)."""

from __future__ import annotations

import os

import pytest

from tests.conftest import Project

pytestmark = pytest.mark.docker

LS = ("import os; print([n for n in os.listdir(b'.') if b'donn' in n],"
      " open(b'donn\\xe9es.txt').read().strip())\n")


@pytest.mark.parametrize("mount", ["1", "0"])
def test_a_name_that_is_not_utf8_reaches_the_container(dproject: Project, mount: str) -> None:
    (dproject.root / os.fsdecode(b"donn\xe9es.txt")).write_bytes(b"latin-1 name\n")
    dproject.write("ls.py", LS)
    res = dproject.cli("submit", "-c", "docker", "ls.py", env={"LABDECK_DOCKER_MOUNT": mount},
                       timeout=120)
    assert res.returncode == 0, res.stderr
    assert "[b'donn\\xe9es.txt'] latin-1 name" in res.stdout, res.stdout
