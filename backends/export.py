"""``labdeck runs export RUN``: one ``.tar.gz`` with all a run is.

Inside, under ``<run id>/``: ``run.json`` (how it ran), ``record.json`` (the store's row: status,
times, name, tags, params, metrics), ``metrics.json`` (every value logged, series whole),
``log``, ``outputs/``, ``snapshot.json`` (the manifest: path, sha256, size, mode, mtime of each
file; for a run from before manifests, one hashed from its full copy) and, with
``with_objects``, ``objects/ab/cdef...``: the snapshot's content, so the archive alone rebuilds
its files. Written to a temporary name beside the destination and renamed when complete.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import objects
from .errors import StorageError, UsageError

if TYPE_CHECKING:
    from .engine import Engine


def export_run(engine: Engine, ref: str, dest: Path | None = None,
               with_objects: bool = False) -> tuple[Path, list[str]]:
    """Write the archive; its path and the names it holds."""
    record = engine.get(ref)
    run_dir = engine.project.run_dir(record.id)
    dest = dest or Path(f"{record.id}.tar.gz")
    if dest.is_dir():
        dest = dest / f"{record.id}.tar.gz"
    try:
        manifest: objects.Manifest | None = engine.manifest(record.id)
    except UsageError:
        manifest = None  # a sharedVolumes run: it ran the project in place, no snapshot
    top = record.id
    names: list[str] = []
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            def add_bytes(name: str, data: bytes) -> None:
                info = tarfile.TarInfo(f"{top}/{name}")
                info.size = len(data)
                info.mtime = int(time.time())
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
                names.append(name)

            def add_path(name: str, path: Path) -> None:
                tar.add(path, arcname=f"{top}/{name}", recursive=False)
                names.append(name)

            for name in ("run.json", "log"):
                if (run_dir / name).is_file():
                    add_path(name, run_dir / name)
            add_bytes("record.json", _json(record.to_json()))
            add_bytes("metrics.json", _json(engine.store.metrics(record.id)))
            if manifest is not None:
                add_bytes(objects.MANIFEST, _json(manifest.to_json()))
            outputs = run_dir / "outputs"
            if outputs.is_dir():
                for path in sorted(outputs.rglob("*")):
                    if path.is_file() and not path.is_symlink():
                        add_path(path.relative_to(run_dir).as_posix(), path)
            if with_objects and manifest is not None:
                store = objects.ObjectStore(engine.project.state_dir)
                with store.lock():
                    for digest in sorted({e.sha256 for e in manifest.files}):
                        path = store.path(digest)
                        if not path.is_file():
                            raise StorageError(f"run {record.id}: object {digest} of its"
                                               f" snapshot is missing from {store.root}")
                        if not store.intact(digest):
                            raise StorageError(f"run {record.id}: object {path} of its snapshot"
                                               " is damaged (it does not hash to its name)")
                        add_path(f"objects/{digest[:2]}/{digest[2:]}", path)
        os.replace(tmp, dest)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise StorageError(f"cannot write {dest}: {err.strerror or err}") from err
        raise
    return dest, names


def _json(value: object) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, default=str) + "\n").encode()
