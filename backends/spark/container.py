"""spark-submit in a container run as a uid the image does not know.

A remote docker run has the SSH user's uid (its bind-mounted folder stays that user's), a local
one a non-root client's. The image's /etc/passwd lacks that uid, and Spark cannot start: Java
takes "?" as the home (Ivy: "basedir must be absolute: ?/.ivy2.5.2/local") and Hadoop's login
fails ("Invalid UID, could not determine effective user"). So, for Framework PySpark only, the
created container's /etc/passwd gets a line for that uid (home /tmp) before it starts: read and
written through the daemon's archive endpoints, nothing changes on any host nor in the image."""

from __future__ import annotations

import io
import tarfile
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from ..docker.api import DockerAPI

HOME = "/tmp"  # writable whatever the uid: Ivy's cache and Spark's scratch go under it


def passwd_line(uid: str, gid: str) -> str:
    return f"u{uid}:x:{uid}:{gid}:labdeck run:{HOME}:/bin/sh\n"


def with_user(passwd: str, user: str | None) -> str | None:
    """``passwd`` with a line for ``user`` ("uid[:gid]"), or None when nothing is to change
    (no user, root, a name, or a uid the image knows)."""
    if user is None:
        return None
    uid, _, gid = user.partition(":")
    if not uid.isdigit() or uid == "0":
        return None
    if any(line.split(":")[2:3] == [uid] for line in passwd.splitlines()):
        return None
    ending = "" if not passwd or passwd.endswith("\n") else "\n"
    return passwd + ending + passwd_line(uid, gid if gid.isdigit() else uid)


def _read_passwd(stream: BinaryIO) -> str:
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if member.isfile():
                got = tar.extractfile(member)
                return got.read().decode("utf-8", "replace") if got is not None else ""
    return ""


def _passwd_tar(text: str) -> bytes:
    data = text.encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("passwd")
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


async def name_the_user(api: DockerAPI, cid: str, user: str | None) -> None:
    """Give the container's user a name and a home (see the module doc); call it between the
    container's create and its start, for Framework PySpark runs."""
    if with_user("", user) is None:  # root, a name or none: nothing to read
        return
    passwd = await api.get_archive(cid, "/etc/passwd", _read_passwd)
    changed = with_user(passwd, user)
    if changed is None:
        return
    data = _passwd_tar(changed)

    def write(out: BinaryIO) -> None:
        out.write(data)

    await api.put_archive(cid, "/etc", write)
