"""A project file whose name is not UTF-8 reaches the rig's container by the remote sync, read
from the run's materialised snapshot (issue 12, item 1)."""

from __future__ import annotations

import os

import pytest

from tests.docker.conftest import run_id_of
from tests.remote.conftest import RemoteProject, Rig

pytestmark = pytest.mark.docker


def test_a_name_that_is_not_utf8_is_synced(rproject: RemoteProject, rig: Rig) -> None:
    (rproject.root / os.fsdecode(b"donn\xe9es.txt")).write_bytes(b"latin-1 name\n")
    rproject.write("ls.py", "import os; print([n for n in os.listdir(b'.') if b'donn' in n],"
                   " open(b'donn\\xe9es.txt').read().strip())\n")
    res = rproject.cli("submit", "-c", "rig", "ls.py", timeout=120)
    assert res.returncode == 0, res.stderr
    assert "[b'donn\\xe9es.txt'] latin-1 name" in res.stdout, res.stdout
    run_dir = rproject.root / ".labdeck" / "runs" / run_id_of(res.stdout)
    assert (run_dir / "snapshot.json").is_file()
