"""What the fast paths do NOT import, observed on the real entry points in subprocesses.

Each module kept off the plain submit was measured at a few ms on a 2-core machine (git log:
dataclasses+inspect ~13 ms, typing ~4 ms, yaml ~30 ms, hashlib/OpenSSL ~2 ms, click ~50 ms...);
benches say how fast a submit is, these tests say which promise broke. A driver runs the real
``tui.entry.main`` (or a ``backends`` module as ``__main__``) under a meta-path finder that records
which module imported each one, and every process it becomes (the CLI and the supervisor forked
ahead of its run) writes its ``sys.modules`` when it ends: both end through ``os._exit``, so the
driver hooks that. A failure names the module and the chain of imports that brought it.
"""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from backends.project import CONFIG_CACHE
from backends.yamlfile import CACHE_SETTLE_NS
from tests.conftest import REPO, cli_env

Record = dict[str, Any]  # one process's dump: modules, who imported each, pids

DRIVER = r'''
import os, sys

dump_dir, mode, what, *args = sys.argv[1:]
at_start = set(sys.modules)  # the interpreter's and site's (.pth files), before any of ours
importer = {}
state = {"cli": os.getpid(), "forked_from": None, "at_fork": None}


class RecordImporter:
    """First in sys.meta_path: sees every module not yet loaded and notes who asked for it."""

    def find_spec(self, name, path=None, target=None):
        if name not in importer:
            frame = sys._getframe(1)
            while frame is not None and (
                frame.f_code.co_filename.startswith("<frozen importlib")
                or frame.f_globals.get("__name__") == "importlib"
            ):
                frame = frame.f_back
            importer[name] = frame.f_globals.get("__name__") if frame is not None else None
        return None


def after_fork():
    state["forked_from"] = os.getppid()
    state["at_fork"] = sorted(sys.modules)


def dump(code):
    import json

    record = {"pid": os.getpid(), "cli": os.getpid() == state["cli"], "code": code,
              "forked_from": state["forked_from"], "at_fork": state["at_fork"],
              "at_start": sorted(at_start), "modules": sorted(sys.modules), "importer": importer}
    path = os.path.join(dump_dir, f"{os.getpid()}.json")
    with open(path + ".tmp", "w") as fh:
        json.dump(record, fh)
    os.replace(path + ".tmp", path)


real_exit = os._exit


def dumping_exit(code):
    dump(code)
    real_exit(code)


sys.meta_path.insert(0, RecordImporter())
os.register_at_fork(after_in_child=after_fork)
os._exit = dumping_exit  # the fast submit and the forked supervisor both end through it
sys.argv = [what, *args]
try:
    if mode == "entry":
        from tui.entry import main

        main()
    else:
        import runpy

        runpy.run_module(what, run_name="__main__", alter_sys=True)
    code = 0
except SystemExit as done:
    code = done.code if isinstance(done.code, int) else 1
dump(code)
sys.exit(code)
'''

# Each measured at a few ms or more of a submit's start; none is needed to record a run.
CLI_NEVER = (
    "dataclasses", "typing", "inspect", "ast", "dis", "tokenize", "hashlib", "_hashlib", "ssl",
    "click", "yaml", "textual", "rich", "aiohttp", "aiodocker", "pathspec", "watchfiles",
    "shutil", "bz2", "lzma", "tarfile", "zipfile", "tempfile", "random", "uuid", "logging",
    "subprocess", "asyncio", "concurrent.futures", "socket", "selectors", "email", "http",
    "importlib.metadata", "pkg_resources", "shlex", "datetime",
)
# The supervisor forked ahead loads asyncio and the backend (zygote.EARLY_PRELOAD); asyncio
# brings ssl, inspect, logging, subprocess and typing with it (3.11), so those cost nothing more.
SUPERVISOR_NEVER = (
    "dataclasses", "hashlib", "_hashlib", "click", "yaml", "textual", "rich", "aiohttp",
    "aiodocker", "pathspec", "watchfiles", "tarfile", "zipfile", "tempfile",
    "importlib.metadata", "pkg_resources", "shlex", "datetime",
)
# Allowed in the supervisor only when the stdlib package named brought it first (a labdeck
# module loaded before asyncio that imported it would pay for it ahead of the run).
SUPERVISOR_ONLY_VIA = {"typing": "asyncio"}
LAYER_NEVER = ("tui", "textual", "rich", "click")


def _chain(record: Record, module: str) -> str:
    importer = record["importer"]
    links, seen = [module], {module}
    while (parent := importer.get(links[-1])) and parent not in seen:
        links.append(parent)
        seen.add(parent)
    if links[-1] == "__main__":
        links[-1] = "the entry point"
    return " <- ".join(links)


def _loaded(record: Record, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if name in record["modules"]]


def _observe(args: list[str], cwd: Path, dump_dir: Path, *, mode: str = "entry",
             pass_fds: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:
    dump_dir.mkdir(parents=True, exist_ok=True)
    env = cli_env()
    return subprocess.run(
        [sys.executable, "-c", DRIVER, str(dump_dir), mode, *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, pass_fds=pass_fds,
    )


def _records(dump_dir: Path) -> list[Record]:
    return [json.loads(path.read_text()) for path in sorted(dump_dir.glob("*.json"))]


def _wait_for(condition: Callable[[], bool], what: str, guard: float = 60.0) -> None:
    deadline = time.monotonic() + guard
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def _fail_if_unobservable(record: Record, names: tuple[str, ...]) -> None:
    """A module the interpreter's start (site, a .pth file) loaded cannot be seen being imported
    by labdeck: say so instead of passing without having looked."""
    early = [name for name in names if name in record["at_start"]]
    assert not early, f"loaded before labdeck by the interpreter's start (site/.pth): {early}"


@pytest.fixture(scope="module")
def submits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Record]]:
    """Both plain submits (following, and -a) of a project whose config cache is warm."""
    root = tmp_path_factory.mktemp("budget") / "proj"
    (root / "aml_config").mkdir(parents=True)
    config = root / "aml_config" / "local.compute"
    config.write_text('type: "local"\n')
    (root / "job.py").write_text("print('ran')\n")
    # The cache takes no file changed within its settle window ("racily clean"); ctime cannot
    # be aged, so wait until the file is old enough to be cached.
    stat = config.stat()
    changed = max(stat.st_mtime_ns, stat.st_ctime_ns)
    _wait_for(lambda: time.time_ns() - changed > CACHE_SETTLE_NS, "config file settled")
    warm = _observe(["labdeck", "submit", "-c", "local", "job.py"], root, root.parent / "warm")
    assert warm.returncode == 0, warm.stderr
    cache = json.loads((root / ".labdeck" / CONFIG_CACHE).read_text())
    assert cache.get("entries"), f"the warm-up submit left no config cache: {cache}"
    observed = {}
    for name, argv in (("follow", ["submit", "-c", "local", "job.py"]),
                       ("async", ["submit", "-a", "job.py"])):
        dump_dir = root.parent / name
        result = _observe(["labdeck", *argv], root, dump_dir)
        assert result.returncode == 0, result.stderr
        assert ("ran" in result.stdout) == (name == "follow"), result.stdout

        def both_ended(dump_dir: Path = dump_dir) -> bool:
            return len(list(dump_dir.glob("*.json"))) >= 2

        _wait_for(both_ended, f"the CLI and its supervisor ended ({name})")
        observed[name] = _records(dump_dir)
    return observed


def _cli(records: list[Record]) -> Record:
    (cli,) = [r for r in records if r["cli"]]
    return cli


def _supervisor(records: list[Record]) -> Record:
    cli = _cli(records)
    (child,) = [r for r in records if r["forked_from"] == cli["pid"]]
    assert child["code"] == 0, "the supervisor forked ahead did not end cleanly"
    # A plain local run's supervisor: syncsupervisor.py, which needs no asyncio.
    assert "backends.syncsupervisor" in child["modules"]
    return child


@pytest.mark.parametrize("how", ["follow", "async"])
def test_plain_submit_loads_none_of_the_heavy_modules(
    submits: dict[str, list[Record]], how: str
) -> None:
    cli = _cli(submits[how])
    _fail_if_unobservable(cli, CLI_NEVER)
    loaded = _loaded(cli, CLI_NEVER)
    assert not loaded, "the plain submit (warm config cache) imported:\n" + "\n".join(
        _chain(cli, name) for name in loaded
    )


@pytest.mark.parametrize("how", ["follow", "async"])
def test_supervisor_forked_ahead_loads_its_supervisor_only(
    submits: dict[str, list[Record]], how: str
) -> None:
    child = _supervisor(submits[how])
    _fail_if_unobservable(child, SUPERVISOR_NEVER)
    loaded = _loaded(child, SUPERVISOR_NEVER)
    assert not loaded, "the supervisor forked ahead imported:\n" + "\n".join(
        _chain(child, name) for name in loaded
    )
    at_fork = set(child["at_fork"])
    own = [m for m in child["modules"] if m not in at_fork]
    ui = [m for m in own if m.split(".")[0] in LAYER_NEVER]
    assert not ui, "the supervisor imported UI modules after the fork:\n" + "\n".join(
        _chain(child, name) for name in ui
    )
    importer = child["importer"]
    for module, via in SUPERVISOR_ONLY_VIA.items():
        if module in own:
            first = importer.get(module) or ""
            assert first.split(".")[0] == via, (
                f"{module} was imported before {via} loaded it anyway: {_chain(child, module)}"
            )
    assert "backends.syncsupervisor" in own  # what it is there to load (no asyncio needed)


def test_cli_and_supervisor_records_are_what_they_claim(
    submits: dict[str, list[Record]]
) -> None:
    """The observer sees imports at all: the paths above load labdeck through it."""
    for records in submits.values():
        cli = _cli(records)
        assert _chain(cli, "backends.store").endswith("the entry point")
        assert "tui.submitting" in _chain(cli, "backends.store")


def _backends_modules() -> list[str]:
    names = []
    for path in sorted((REPO / "backends").rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        if "shim" in rel.parts:
            continue  # copied into the run's environment, not imported by labdeck
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        names.append(".".join(parts))
    return names


def test_importing_every_backends_module_imports_no_ui(tmp_path: Path) -> None:
    names = _backends_modules()
    assert "backends.supervisor" in names and "backends.engine" in names
    dump_dir = tmp_path / "all"
    code = (
        "import importlib, json, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
    )
    (tmp_path / "import_all.py").write_text(code)
    result = _observe(["import_all"], tmp_path, dump_dir, mode="module")
    assert result.returncode == 0, result.stderr
    (record,) = _records(dump_dir)
    ui = [m for m in record["modules"] if m.split(".")[0] in LAYER_NEVER]
    assert not ui, "importing backends imported UI modules:\n" + "\n".join(
        _chain(record, name) for name in ui
    )


def test_backends_entry_points_run_without_ui(tmp_path: Path) -> None:
    """``python -m backends.supervisor`` and ``python -m backends.zygote``, run for real."""
    supervisor = _observe(["backends.supervisor"], tmp_path, tmp_path / "sup", mode="module")
    assert supervisor.returncode == 2 and "usage" in supervisor.stderr
    ours, theirs = socket.socketpair()
    try:
        fd = theirs.fileno()
        ours.close()  # the zygote's client is gone: it preloads, sees EOF, and exits
        zygote = _observe(["backends.zygote", str(fd)], tmp_path, tmp_path / "zyg",
                          mode="module", pass_fds=(fd,))
    finally:
        theirs.close()
    assert zygote.returncode == 0, zygote.stderr
    for dump_dir in (tmp_path / "sup", tmp_path / "zyg"):
        (record,) = _records(dump_dir)
        assert "backends.store" in record["modules"]
        ui = [m for m in record["modules"] if m.split(".")[0] in LAYER_NEVER]
        assert not ui, f"{dump_dir.name}: " + "\n".join(_chain(record, n) for n in ui)


def test_backends_source_names_no_ui_module() -> None:
    """Also imports inside functions, which no run above may reach."""
    found = []
    for path in sorted((REPO / "backends").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [f"{path.relative_to(REPO)}:{node.lineno}: {name}"
                      for name in names if name.split(".")[0] in LAYER_NEVER]
    assert not found, "backends/ imports UI modules:\n" + "\n".join(found)


def test_the_driver_sees_an_import_it_is_shown(tmp_path: Path) -> None:
    """The observer itself: a module's import is seen, with the chain that brought it."""
    (tmp_path / "entry_mod.py").write_text("import helper_mod\n")
    (tmp_path / "helper_mod.py").write_text("import dataclasses\n")
    env_dir = tmp_path / "dump"
    result = _observe(["entry_mod"], tmp_path, env_dir, mode="module")
    assert result.returncode == 0, result.stderr
    (record,) = _records(env_dir)
    assert _chain(record, "dataclasses") == "dataclasses <- helper_mod <- the entry point"
    assert os.getpid() != record["pid"]
