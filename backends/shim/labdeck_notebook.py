"""Run a Jupyter notebook as a labdeck run: ``python -m labdeck_notebook NOTEBOOK [ARGS...]``.

Standalone (it travels with the shim to every target; nbclient and ipykernel must be in the
target's Python). Each cell's output is written to this process's stdout/stderr as it arrives, so
the run's log and its metric lines (``azureml.logging`` in a cell) work as for a script; the
executed notebook is kept as ``outputs/<name>.ipynb``; a failing cell fails the run with its
traceback. The kernel is this interpreter's own ``python3`` (the kernel a notebook names, such as
Workbench's ``myproject_docker``, does not exist here) and starts in the notebook's folder, as
Jupyter starts it. ARGS become the kernel's ``sys.argv[1:]``.
"""

import os
import re
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MARKER = "\x1e@@labdeck:metric "
HINT = ("labdeck: notebook runs need nbclient and ipykernel in the target's Python ({python}): "
        "add them to conda_dependencies.yml under '- pip:' (nbclient, ipykernel) or pip install "
        "them there")


def _write(stream, text):
    stream.write(text)
    stream.flush()


def _plain(text):
    """A notebook's output without its metric lines (they went to the log already)."""
    return "".join(line for line in text.splitlines(True) if not line.startswith(MARKER))


def main(argv):
    if not argv:
        _write(sys.stderr, "usage: python -m labdeck_notebook NOTEBOOK [ARGS...]\n")
        return 2
    path, args = argv[0], argv[1:]
    try:
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError
    except ImportError:
        _write(sys.stderr, HINT.format(python=sys.executable) + "\n")
        return 2
    try:
        nb = nbformat.read(path, as_version=4)
    except (OSError, ValueError) as err:  # nbformat's read errors are ValueErrors
        _write(sys.stderr, f"labdeck: cannot read notebook {path}: {err}\n")
        return 2

    class StreamingClient(NotebookClient):
        """Echoes each output message as the kernel sends it (nbclient only stores them)."""

        def output(self, outs, msg, display_id, cell_index):
            kind = msg["msg_type"]
            content = msg["content"]
            if kind == "stream":
                _write(sys.stderr if content.get("name") == "stderr" else sys.stdout,
                       content.get("text", ""))
            elif kind in ("execute_result", "display_data"):
                text = content.get("data", {}).get("text/plain")
                if text and kind == "execute_result":
                    _write(sys.stdout, text + "\n")
            return super().output(outs, msg, display_id, cell_index)

    setup = nbformat.v4.new_code_cell(
        "import sys as _labdeck_sys; _labdeck_sys.argv = " + repr([path, *args]))
    nb.cells.insert(0, setup)
    folder = os.path.dirname(os.path.abspath(path))
    # The kernel's own stdout (fd 1, where the metric shim writes) stays this process's: no
    # capture into the notebook, so each metric line reaches the log once, as it happens.
    client = StreamingClient(nb, kernel_name="python3", timeout=None, startup_timeout=120,
                             resources={"metadata": {"path": folder}},
                             extra_arguments=["--IPKernelApp.capture_fd_output=False",
                                              "--IPKernelApp.log_level=ERROR"])
    failed = None
    try:
        client.execute()
    except CellExecutionError:
        failed = _failed_cell(nb)
    except Exception as err:  # the kernel did not start, or died: one line
        failed = (None, f"{type(err).__name__}: {err}".strip())
    del nb.cells[0]
    for cell in nb.cells:  # numbered as if the set-up cell had never run
        if cell.get("execution_count"):
            cell["execution_count"] -= 1
        for out in cell.get("outputs", []):
            if out.get("execution_count"):
                out["execution_count"] -= 1
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                out["text"] = _plain(out.get("text", ""))
    _save(nbformat, nb, path)
    if failed is not None:
        index, trace = failed
        where = f"cell {index}" if index is not None else "start"
        if trace:
            _write(sys.stderr, trace.rstrip("\n") + "\n")
        _write(sys.stderr, f"labdeck: notebook {path} failed at {where}\n")
        return 1
    return 0


def _failed_cell(nb):
    """(1-based number of the failing cell among the notebook's own cells, its traceback)."""
    for number, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                trace = "\n".join(ANSI.sub("", line) for line in out.get("traceback", []))
                return number, trace or f"{out.get('ename')}: {out.get('evalue')}"
    return None, ""


def _save(nbformat, nb, path):
    os.makedirs("outputs", exist_ok=True)
    dest = os.path.join("outputs", os.path.basename(path))
    try:
        nbformat.write(nb, dest)
    except OSError as err:
        _write(sys.stderr, f"labdeck: cannot keep the executed notebook in {dest}: {err}\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
