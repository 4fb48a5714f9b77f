"""The standalone master's HTTP faces, blocking (callers use threads): the REST submission
server (create, status, kill of cluster-mode drivers), the master UI's /json/ (workers, apps),
and a worker UI's /log/ (a driver's stdout/stderr by offset: the one way to read a driver's
output that also works when the worker is another machine, as long as its UI is reachable)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

from ..errors import TargetError

TIMEOUT = 10.0
LOG_CHUNK = 1 << 16
TERMINAL_DRIVER_STATES = {"FINISHED", "FAILED", "KILLED", "ERROR"}
_LOG_HEADER = re.compile(rb"==== Bytes (\d+)-(\d+) of (\d+) of (.*?) ====\n")


def request_json(url: str, body: dict[str, object] | None = None,
                 what: str = "") -> dict[str, object]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET",
                                 headers={"Content-Type": "application/json;charset=UTF-8"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            text = resp.read()
    except urllib.error.HTTPError as err:  # the REST server answers errors with a JSON body
        text = err.read()
        if not text.lstrip().startswith(b"{"):
            raise TargetError(f"{what or url}: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise TargetError(f"{what or url} does not answer ({reason})") from err
    try:
        parsed = json.loads(text)
    except ValueError as err:
        raise TargetError(f"{what or url}: not a JSON answer") from err
    if not isinstance(parsed, dict):
        raise TargetError(f"{what or url}: unexpected answer {text[:80]!r}")
    return parsed


def create(rest_url: str, body: dict[str, object]) -> str:
    """Submit a driver; its submission id (driver-...)."""
    answer = request_json(f"{rest_url.rstrip('/')}/v1/submissions/create", body,
                          f"the master's REST server {rest_url}")
    sid = answer.get("submissionId")
    if not answer.get("success") or not isinstance(sid, str):
        raise TargetError(f"the master refused the driver: {answer.get('message', answer)}")
    return sid


def status(rest_url: str, sid: str) -> dict[str, object]:
    return request_json(f"{rest_url.rstrip('/')}/v1/submissions/status/{sid}", None,
                        f"the master's REST server {rest_url}")


def kill(rest_url: str, sid: str) -> dict[str, object]:
    return request_json(f"{rest_url.rstrip('/')}/v1/submissions/kill/{sid}", {},
                        f"the master's REST server {rest_url}")


def master_state(ui_url: str) -> dict[str, object]:
    return request_json(f"{ui_url.rstrip('/')}/json/", None, f"the master's UI {ui_url}")


def worker_ui(ui_url: str, worker_id: str) -> str | None:
    workers = master_state(ui_url).get("workers")
    for worker in workers if isinstance(workers, list) else []:
        if isinstance(worker, dict) and worker.get("id") == worker_id:
            address = worker.get("webuiaddress")
            return address if isinstance(address, str) else None
    return None


def parse_log_page(page: bytes) -> tuple[bytes, int, int, str] | None:
    """A worker's /log/ answer: (bytes, end offset, file length, file path on the worker)."""
    m = _LOG_HEADER.match(page)
    if m is None:
        return None
    return page[m.end():], int(m.group(2)), int(m.group(3)), m.group(4).decode(errors="replace")


def read_driver_log(worker: str, sid: str, log_type: str,
                    offset: int) -> tuple[bytes, int, str] | None:
    """The driver's ``log_type`` (stdout or stderr) from ``offset``: (bytes, next offset, path)."""
    url = (f"{worker.rstrip('/')}/log/?driverId={sid}&logType={log_type}"
           f"&offset={offset}&byteLength={LOG_CHUNK}")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
            page = resp.read()
    except (urllib.error.URLError, OSError):
        return None  # not there yet (the driver's folder is made as it starts)
    parsed = parse_log_page(page)
    if parsed is None:
        return None
    data, end, _length, path = parsed
    return data, max(end, offset), path
