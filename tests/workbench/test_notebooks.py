"""`labdeck submit NOTEBOOK.ipynb`: cells' output streamed into the log as they run, metrics from
cells recorded, the executed notebook kept in outputs/, a failing cell fails the run with its
traceback; a Python without nbclient says how to add it. Before: the .ipynb was run as a Python
script (a SyntaxError or NameError on its JSON)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from backends.metrics import SHIM_DIR
from tests.conftest import Project


def notebook(path: Path, *sources: str, kernel: str = "myproject_docker") -> Path:
    nb = nbformat.v4.new_notebook()
    # Workbench named kernels after project and target: no such kernel exists here.
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_notebook_runs_streams_records_metrics_and_keeps_the_executed_copy(
        project: Project) -> None:
    gate = project.root.parent / "gate"
    notebook(
        project.root / "explore.ipynb",
        "print('cell one says hi', flush=True)",
        f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.05)",
        "from azureml.logging import get_azureml_logger\n"
        "get_azureml_logger().log('Accuracy', 0.75)\n"
        "open('outputs/model.txt', 'w').write('m')\n"
        "6 * 7",
    )
    res = project.cli("submit", "-a", "-c", "local", "explore.ipynb", check=True)
    run_id = res.stdout.splitlines()[0]
    log = project.root / ".labdeck" / "runs" / run_id / "log"
    deadline = time.monotonic() + 60
    # The first cell's line is in the log while the second cell still runs: streamed, not
    # written at the end.
    while time.monotonic() < deadline:
        if log.is_file() and "cell one says hi" in log.read_text():
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"first cell's output never reached the log: {log}")
    gate.write_text("go")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        record = json.loads(project.cli("runs", "show", run_id, "-o", "json",
                                        check=True).stdout)
        if record["status"] in ("completed", "failed"):
            break
        time.sleep(0.1)
    assert record["status"] == "completed", log.read_text()
    assert record["metrics"]["Accuracy"] == 0.75
    assert sorted(record["outputs"]) == ["explore.ipynb", "model.txt"]
    assert "42" in log.read_text()
    kept = nbformat.read(project.root / ".labdeck" / "runs" / run_id / "outputs" /
                         "explore.ipynb", as_version=4)
    assert len(kept.cells) == 3 and kept.cells[0].outputs[0]["text"] == "cell one says hi\n"
    assert kept.cells[0].execution_count == 1


def test_failing_cell_fails_the_run_with_its_traceback(project: Project) -> None:
    notebook(project.root / "nb" / "bad.ipynb", "x = 1", "raise ValueError('no data here')",
             "print('never printed')")
    res = project.cli("submit", "-c", "local", "nb/bad.ipynb", timeout=180)
    assert res.returncode == 1
    assert "ValueError: no data here" in res.stderr
    assert "labdeck: notebook nb/bad.ipynb failed at cell 2" in res.stderr
    assert "never printed" not in res.stdout


@pytest.mark.parametrize("runner_args", [["x.ipynb"]])
def test_a_python_without_nbclient_gets_one_line_saying_how_to_add_it(
        tmp_path: Path, runner_args: list[str]) -> None:
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "nbclient.py").write_text("raise ImportError('not installed here')\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{SHIM_DIR}"}
    out = subprocess.run([sys.executable, "-m", "labdeck_notebook", *runner_args], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "nbclient, ipykernel" in lines[0]
    assert "conda_dependencies.yml" in lines[0]
