"""Tiny packages made on the spot (no network): a wheel, and a source-only sdist with an in-tree
build backend."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path


def make_wheel(dest: Path, name: str = "labdecktiny", version: str = "0.1",
               value: int = 42) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VALUE = {value}\n".encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: labdeck-tests\nRoot-Is-Purelib: true\n"
                         b"Tag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return wheel


# A PEP 517 backend carried inside the sdist (backend-path): building it needs nothing from an
# index, so the client's ``pip wheel`` works offline, as a real source package's build would.
IN_TREE_BACKEND = '''
import base64, hashlib, os, zipfile

NAME, VERSION, REQUIRES = {name!r}, {version!r}, {requires!r}


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    import platform, subprocess, sys, sysconfig

    tag, pure = "py3-none-any", "true"
    native = os.path.join(NAME, "_native.c")
    if os.path.exists(native):  # a C extension, compiled as setuptools would, for this Python
        so = os.path.join(NAME, "_native" + sysconfig.get_config_var("EXT_SUFFIX"))
        subprocess.run(["cc", "-shared", "-fPIC", "-I" + sysconfig.get_paths()["include"],
                        native, "-o", so], check=True)
        py = f"cp{{sys.version_info[0]}}{{sys.version_info[1]}}"
        tag, pure = f"{{py}}-{{py}}-linux_{{platform.machine()}}", "false"
    info = f"{{NAME}}-{{VERSION}}.dist-info"
    meta = f"Metadata-Version: 2.1\\nName: {{NAME}}\\nVersion: {{VERSION}}\\n"
    meta += "".join(f"Requires-Dist: {{r}}\\n" for r in REQUIRES)
    files = {{f"{{info}}/METADATA": meta.encode(),
             f"{{info}}/WHEEL": (f"Wheel-Version: 1.0\\nGenerator: labdeck-tests\\n"
                                f"Root-Is-Purelib: {{pure}}\\nTag: {{tag}}\\n").encode()}}
    for root, _, names in os.walk(NAME):
        for n in names:
            if n.endswith((".py", ".so")):
                path = os.path.join(root, n)
                with open(path, "rb") as f:
                    files[path.replace(os.sep, "/")] = f.read()
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{{path}},sha256={{digest}},{{len(data)}}")
    record.append(f"{{info}}/RECORD,,")
    files[f"{{info}}/RECORD"] = ("\\n".join(record) + "\\n").encode()
    wheel = f"{{NAME}}-{{VERSION}}-{{tag}}.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return wheel
'''


def make_sdist(dest: Path, name: str = "labdecksrc", version: str = "1.0",
               source: str = "VALUE = 42\n", requires: tuple[str, ...] = (),
               c_source: str | None = None) -> Path:
    """A source-only package (``name-version.tar.gz``, no wheel anywhere) whose module is
    ``source``; ``requires`` become its wheel's Requires-Dist; ``c_source``: the C of an
    extension module ``name._native``, compiled with cc when the wheel is built."""
    import tarfile

    dest.mkdir(parents=True, exist_ok=True)
    top = f"{name}-{version}"
    files = {
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        "pyproject.toml": "[build-system]\nrequires = []\nbuild-backend = \"labdeck_backend\"\n"
                          "backend-path = [\".\"]\n",
        "labdeck_backend.py": IN_TREE_BACKEND.format(name=name, version=version,
                                                     requires=list(requires)),
        f"{name}/__init__.py": source,
    }
    if c_source is not None:
        files[f"{name}/_native.c"] = c_source
    sdist = dest / f"{top}.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{path}")
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return sdist
