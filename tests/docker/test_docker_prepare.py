"""prepare: the environment image, its input-hash tag and cache, live build log, offline wheels."""

from __future__ import annotations

import asyncio
import functools
import platform
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from backends.engine import Engine
from backends.project import Project as EngineProject
from tests.conftest import Project
from tests.docker.conftest import docker, record, run_id_of
from tests.docker.wheels import make_sdist, make_wheel

pytestmark = pytest.mark.docker


def offline_env(wheels: Path) -> dict[str, str]:
    # The client's pip finds wheels only in this folder: no index, no network.
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1 (a package index, files, 404s): (folder, URL)."""
    root = tmp_path / "served"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def index_env(url: str) -> dict[str, str]:
    # The client's pip asks only this index (the supported way: pip options are not pip entries).
    return {"PIP_INDEX_URL": f"{url}/simple/", "PIP_FIND_LINKS": "", "NO_PROXY": "127.0.0.1",
            "no_proxy": "127.0.0.1"}


def env_images(root: Path) -> list[str]:
    out = docker("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                 f"label=org.labdeck.project={root}").stdout
    return sorted(set(out.split()))


def test_offline_prepare_builds_caches_and_rebuilds_on_change(dproject: Project,
                                                              tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels)
    dproject.write("aml_config/conda_dependencies.yml", """
        name: env
        dependencies:
          - python=3.11
          - pip
          - pip:
            - labdecktiny
    """)
    res = dproject.cli("prepare", "-c", "docker", "--offline", env=offline_env(wheels),
                       timeout=300)
    assert res.returncode == 0, res.stderr
    assert "Step 1/" in res.stderr and "Successfully built" in res.stderr  # the live build log
    assert "(cached)" not in res.stdout
    tags = env_images(dproject.root)
    assert len(tags) == 1 and tags[0].startswith("labdeck-env/shared:")
    assert tags[0] in res.stdout

    started = time.perf_counter()
    again = dproject.cli("prepare", "-c", "docker", check=True)
    assert time.perf_counter() - started < 1.5  # the whole command, interpreter start included
    assert "(cached)" in again.stdout and tags[0] in again.stdout
    engine = Engine(EngineProject(dproject.root))
    asyncio.run(engine.prepare("docker"))  # imports aiodocker once
    started = time.perf_counter()
    env = asyncio.run(engine.prepare("docker"))
    assert env.cached and time.perf_counter() - started < 0.3

    dproject.write("uses.py", "import labdecktiny\nprint('value', labdecktiny.VALUE)\n")
    res = dproject.cli("submit", "-c", "docker", "uses.py", timeout=120)
    assert res.returncode == 0, res.stderr
    assert "value 42" in res.stdout

    # A changed dependency list is another image; the comment-only edit is not.
    dproject.write("aml_config/conda_dependencies.yml", """
        # a comment changes nothing
        name: env
        dependencies:
          - python=3.11
          - pip
          - pip:
            - labdecktiny
    """)
    assert "(cached)" in dproject.cli("prepare", "-c", "docker", check=True).stdout
    make_wheel(wheels, version="0.2", value=7)
    dproject.write("aml_config/conda_dependencies.yml", """
        dependencies:
          - pip:
            - labdecktiny==0.2
    """)
    res = dproject.cli("prepare", "-c", "docker", "--offline", env=offline_env(wheels),
                       timeout=300)
    assert res.returncode == 0, res.stderr
    assert len(env_images(dproject.root)) == 2
    res = dproject.cli("submit", "-c", "docker", "uses.py", timeout=120)
    assert "value 7" in res.stdout
    assert record(dproject, run_id_of(res.stdout))["status"] == "completed"


def test_conda_section_without_conda_in_the_image_goes_through_pip(dproject: Project,
                                                                   tmp_path: Path) -> None:
    # A Workbench-era file: conda pins for a Python the image lacks; the image has no conda.
    wheels = tmp_path / "wheels"
    make_wheel(wheels, version="0.1", value=1)
    make_wheel(wheels, version="0.2", value=2)
    dproject.write("aml_config/conda_dependencies.yml", """
        name: project_environment
        dependencies:
          - python=3.5.2
          - labdecktiny=0.0.5
    """)
    res = dproject.cli("prepare", "-c", "docker", "--offline", env=offline_env(wheels),
                       timeout=300)
    assert res.returncode == 0, res.stderr
    assert "python=3.5.2 is not honoured: base image" in res.stderr
    assert "no labdecktiny 0.0.5 for Python 3.11; installing labdecktiny==0.1 instead" in \
        res.stderr
    dproject.write("uses.py", "import labdecktiny\nprint('value', labdecktiny.VALUE)\n")
    run = dproject.cli("submit", "-c", "docker", "uses.py", timeout=120)
    assert run.returncode == 0, run.stderr
    assert "value 1" in run.stdout


def test_offline_build_makes_wheels_of_packages_published_only_as_source(
        dproject: Project, served: tuple[Path, str]) -> None:
    # An index where labdecksrc exists only as an sdist and needs labdecktiny (a wheel there);
    # labdeckurl is an sdist named by URL. Neither has a wheel for the image to download.
    root, url = served
    make_sdist(root / "simple" / "labdecksrc", "labdecksrc", "1.0",
               source="from labdecktiny import VALUE\n", requires=("labdecktiny>=0.1",))
    make_wheel(root / "simple" / "labdecktiny", value=42)
    make_sdist(root / "files", "labdeckurl", "2.0", source="WORD = 'from-url'\n")
    dproject.write("aml_config/conda_dependencies.yml", f"""
        dependencies:
          - pip:
            - labdecksrc
            - {url}/files/labdeckurl-2.0.tar.gz
    """)
    res = dproject.cli("prepare", "-c", "docker", "--offline", env=index_env(url), timeout=300)
    assert res.returncode == 0, res.stderr
    assert "offline: built labdeckurl-2.0-py3-none-any.whl from source on this machine" in \
        res.stderr
    assert "offline: labdecksrc has no wheel for Python 3.11 x86_64; building it from source" \
        in res.stderr
    assert "offline: built labdecksrc-1.0-py3-none-any.whl from source on this machine" in \
        res.stderr
    dproject.write("uses.py", "import labdecksrc, labdeckurl\n"
                              "print('value', labdecksrc.VALUE, labdeckurl.WORD)\n")
    run = dproject.cli("submit", "-c", "docker", "uses.py", timeout=120)
    assert run.returncode == 0, run.stderr
    assert "value 42 from-url" in run.stdout  # 42: labdecktiny, the source package's dependency


def test_dead_pip_urls_are_one_line_errors_naming_the_entry(dproject: Project,
                                                            served: tuple[Path, str]) -> None:
    _, url = served
    closed = socket.socket()  # bound, never listening: connections to it are refused
    closed.bind(("127.0.0.1", 0))
    try:
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}/pkg-1.0.tar.gz"
        cases = [
            (f"{url}/missing-1.0.tar.gz", "answered HTTP 404"),
            (f"git+{url}/nope.git@v1.0#egg=nope", "answered HTTP 404"),
            (f"nope @ {url}/nope-1.0-py3-none-any.whl", "answered HTTP 404"),
            ("https://pkgs.labdeck.invalid/pkg-1.0.tar.gz",
             "host 'pkgs.labdeck.invalid' not found"),
            (refused, "connection refused by 127.0.0.1:"),
            ("./vendor/missing-pkg", "no such file or directory"),
        ]
        for entry, why in cases:
            dproject.write("aml_config/conda_dependencies.yml", f"""
                name: env
                dependencies:
                  - pip:
                    - labdecktiny
                    - {entry}
            """)
            res = dproject.cli("prepare", "-c", "docker", env=index_env(url), timeout=120)
            assert res.returncode == 2, (entry, res.stderr)
            # The error is stderr's last line, citing the entry's line (the file's 6th: the
            # text starts with an empty line); before it only prepare's "building" line.
            lines = res.stderr.strip().splitlines()
            assert len(lines) == 2 and lines[0].startswith("building "), res.stderr
            assert f"conda_dependencies.yml:6: pip entry {entry!r} cannot be installed: " \
                in lines[1] and why in lines[1], (entry, res.stderr)
    finally:
        closed.close()


NATIVE_C = """
#include <Python.h>
static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(42); }
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};
PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
"""


def test_offline_build_of_a_compiled_source_package_uses_this_machines_wheel_when_it_fits(
        dproject: Project, served: tuple[Path, str]) -> None:
    # A C extension published only as source: pip wheel compiles it here, for this Python
    # and platform (cp3XY-cp3XY-linux_x86_64). The image (Python 3.11, glibc 2.36) takes it
    # when this machine has the same Python and a glibc no newer; else one line says so.
    root, url = served
    make_sdist(root / "simple" / "labdeckc", "labdeckc", "1.0",
               source="from labdeckc._native import answer\n", c_source=NATIVE_C)
    dproject.write("aml_config/conda_dependencies.yml", """
        dependencies:
          - pip:
            - labdeckc
    """)
    res = dproject.cli("prepare", "-c", "docker", "--offline", env=index_env(url), timeout=300)
    glibc = tuple(int(p) for p in platform.libc_ver()[1].split("."))
    if sys.version_info[:2] != (3, 11) or glibc > (2, 36) or platform.machine() != "x86_64":
        assert res.returncode == 1
        assert "labdeckc is published only as source and has compiled extensions" in \
            res.stderr.strip().splitlines()[-1], res.stderr
        return
    assert res.returncode == 0, res.stderr
    assert "offline: built labdeckc-1.0-cp311-cp311-linux_x86_64.whl from source" in res.stderr
    dproject.write("uses.py", "import labdeckc\nprint('answer', labdeckc.answer())\n")
    run = dproject.cli("submit", "-c", "docker", "uses.py", timeout=120)
    assert run.returncode == 0, run.stderr
    assert "answer 42" in run.stdout
