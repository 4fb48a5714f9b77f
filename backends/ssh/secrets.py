"""Passwords kept outside the project, referenced from its .compute file.

A password given to ``target attach`` goes to the system keyring where one works (the optional
``keyring`` package with a real backend), else to ``$XDG_CONFIG_HOME/labdeck/secrets.json``
(mode 0600, written atomically). The .compute file holds only ``password:
"LabdeckSecret=<id>"``, as Workbench held ``AzureMlSecret=<id>`` for its key store, which
labdeck cannot read: such a reference gets one line saying how to re-enter the password.
``LABDECK_SECRETS=file`` skips the keyring (tests, headless machines with a locked one).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..config import LABDECK_SECRET_PREFIX as PREFIX
from ..config import SECRET_PREFIX as WORKBENCH_PREFIX
from ..errors import TargetError

SERVICE = "labdeck"


def secret_id(project_root: Path, target: str) -> str:
    """One id per target of a project (two projects' targets of one name stay apart)."""
    digest = hashlib.sha256(str(project_root).encode()).hexdigest()[:10]
    return f"{target}-{digest}"


def reference(sid: str) -> str:
    return PREFIX + sid


def secrets_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "labdeck" / "secrets.json"


def _keyring() -> object | None:
    """The keyring module when it has a usable backend; None otherwise."""
    if os.environ.get("LABDECK_SECRETS", "").lower() == "file":
        return None
    try:
        import keyring  # type: ignore[import-not-found]
        from keyring.backends import fail  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        if isinstance(keyring.get_keyring(), fail.Keyring):
            return None
    except Exception:  # a broken backend configuration: use the file
        return None
    ring: object = keyring
    return ring


def _read_file() -> dict[str, str]:
    path = secrets_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise TargetError(f"cannot read the secrets file {path}: {err}") from err
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_file(data: dict[str, str]) -> None:
    path = secrets_file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=1, sort_keys=True)
    os.replace(tmp, path)


def store(sid: str, password: str) -> str:
    """Keep ``password`` under ``sid``; where it went ("the system keyring" or the file)."""
    ring = _keyring()
    if ring is not None:
        try:
            ring.set_password(SERVICE, sid, password)  # type: ignore[attr-defined]
            return "the system keyring"
        except Exception:  # a locked or absent keyring daemon: fall back to the file
            pass
    data = _read_file()
    data[sid] = password
    _write_file(data)
    return str(secrets_file())


def load(ref: str, target: str, address: str | None = None,
         username: str | None = None) -> str:
    """The password a .compute file's ``password:`` refers to (a clear-text one as it is).
    ``address`` and ``username`` (the compute's) fill in the command that re-enters it."""
    if ref.startswith(WORKBENCH_PREFIX):
        raise TargetError(f"target {target!r}: the password is a Workbench key-store reference, "
                          "which labdeck cannot read; re-enter it with: echo PASSWORD | labdeck "
                          f"target attach remotedocker --name {target} --address "
                          f"{address or 'HOST'} --username {username or 'USER'} "
                          "--password-stdin --force")
    if not ref.startswith(PREFIX):
        return ref
    sid = ref[len(PREFIX):]
    ring = _keyring()
    if ring is not None:
        try:
            value = ring.get_password(SERVICE, sid)  # type: ignore[attr-defined]
        except Exception:
            value = None
        if value is not None:
            return str(value)
    value = _read_file().get(sid)
    if value is None:
        raise TargetError(f"target {target!r}: its password ({sid}) is not in the keyring nor "
                          f"in {secrets_file()}; re-enter it with 'labdeck target attach ... "
                          "--password-stdin --force'")
    return value


def forget(ref: str) -> None:
    """Remove the password a reference names (nothing for other references)."""
    if not ref.startswith(PREFIX):
        return
    sid = ref[len(PREFIX):]
    ring = _keyring()
    if ring is not None:
        try:
            ring.delete_password(SERVICE, sid)  # type: ignore[attr-defined]
        except Exception:
            pass
    data = _read_file()
    if data.pop(sid, None) is not None:
        _write_file(data)
