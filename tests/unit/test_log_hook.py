"""The run's start-up hook (backends/shim/sitecustomize.py) in plain subprocesses: what it
costs a script's start (modules), that it shadows no other sitecustomize, and that it stays out
of the way where output is already live or the variable is absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import cast

from backends.metrics import SHIM_DIR
from backends.outputenv import RUN_OUTPUT_ENV

PROBE = ("import json, sys; print(json.dumps({'modules': sorted(sys.modules), "
         "'stderr': type(sys.stderr).__name__, 'sc': getattr(sys.modules.get('sitecustomize'), "
         "'__file__', None)}))")


def probe(pythonpath: list[str], hook: bool = True, *flags: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONUNBUFFERED", "PYTHONPATH")}
    env["PYTHONPATH"] = os.pathsep.join(pythonpath)
    if hook:
        env.update(RUN_OUTPUT_ENV)
    res = subprocess.run([sys.executable, *flags, "-c", PROBE], env=env, capture_output=True,
                         text=True, check=True)
    assert res.stderr == ""  # no "Error in sitecustomize"
    data: dict[str, object] = json.loads(res.stdout)
    return data


def test_the_hook_loads_no_module_a_bare_start_does_not() -> None:
    bare = set(cast("list[str]", probe([], hook=False)["modules"]))
    hooked = probe([str(SHIM_DIR)])
    assert hooked["stderr"] == "StderrAfterStdout"  # it is installed
    extra = set(cast("list[str]", hooked["modules"])) - bare
    assert extra <= {"sitecustomize", "_signal", "atexit", "_thread"}, extra


def test_the_next_sitecustomize_still_runs(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / "sitecustomize.py").write_text("import sys\nsys.user_hook_ran = True\n")
    data = probe([str(SHIM_DIR), str(user)])
    assert data["sc"] == str(user / "sitecustomize.py")
    assert data["stderr"] == "StderrAfterStdout"


def test_without_another_one_ours_is_the_module() -> None:
    data = probe([str(SHIM_DIR)])
    assert data["sc"] == str(SHIM_DIR / "sitecustomize.py")


def test_nothing_is_installed_when_output_is_unbuffered_or_not_a_run() -> None:
    assert probe([str(SHIM_DIR)], True, "-u")["stderr"] == "TextIOWrapper"
    assert probe([str(SHIM_DIR)], False)["stderr"] == "TextIOWrapper"
