"""NVIDIA GPUs for containers: ``gpus:`` -> the device requests ``docker run --gpus`` sends, the
``--gpus`` flag for ``--explain``, the ``nvidia-smi`` inventory, and the no-NVIDIA-runtime error."""

from __future__ import annotations

import os

from .base import GpuInfo
from .config import GpuRequest
from .errors import TargetError

TYPE_CHECKING = False  # importing typing costs ~3 ms of a submit; annotations need none
if TYPE_CHECKING:
    from typing import Any

NVIDIA_SMI_QUERY = "index,name,memory.total,memory.used,utilization.gpu,uuid"
NO_RUNTIME = ("no NVIDIA runtime on the Docker daemon: install the NVIDIA Container Toolkit "
              "(nvidia-container-toolkit) and restart Docker")


def device_requests(request: GpuRequest | None) -> list[dict[str, Any]]:
    """``HostConfig.DeviceRequests`` exactly as the docker CLI builds it for ``--gpus``."""
    if request is None:
        return []
    if request.device_ids:
        count, ids = 0, list(request.device_ids)
    else:
        count, ids = (request.count if request.count is not None else -1), None
    return [{"Driver": "", "Count": count, "DeviceIDs": ids,
             "Capabilities": [["gpu"]], "Options": {}}]


def gpus_flag(request: GpuRequest | None) -> list[str]:
    """``["--gpus", VALUE]`` for an equivalent ``docker run`` line."""
    if request is None:
        return []
    return ["--gpus", request.cli_value()]


def is_gpu_refusal(message: str) -> bool:
    """The daemon's answer when no device driver (NVIDIA hook) can serve a GPU request."""
    return "could not select device driver" in message and "gpu" in message


def translate_start_error(message: str, request: GpuRequest | None) -> TargetError | None:
    if request is not None and is_gpu_refusal(message):
        return TargetError(NO_RUNTIME)
    return None


def parse_nvidia_smi(text: str) -> list[GpuInfo]:
    """``nvidia-smi --query-gpu=<NVIDIA_SMI_QUERY> --format=csv,noheader,nounits`` output."""
    gpus = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        fields = [f.strip() for f in raw.split(",")]
        if len(fields) < 5:
            raise TargetError(f"cannot read nvidia-smi output line {raw.strip()!r}")
        gpus.append(GpuInfo(
            index=_int(fields[0]), name=fields[1], memory_total_mb=_int(fields[2]),
            memory_used_mb=_int(fields[3]), utilization_pct=_int(fields[4]),
            uuid=fields[5] if len(fields) > 5 else "",
        ))
    return gpus


def _int(text: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        return -1  # "[N/A]" or "[Not Supported]" (some boards report no utilisation)


async def local_inventory(timeout: float = 10.0) -> tuple[list[GpuInfo], str]:
    """The GPUs of this machine from ``nvidia-smi`` (on PATH), and a note when there are none."""
    # Imported here: a run's early start (docker/early.py) loads this module, without these.
    import asyncio
    import shutil

    exe = os.environ.get("LABDECK_NVIDIA_SMI") or shutil.which("nvidia-smi")
    if not exe:
        return [], "none (nvidia-smi not found: no NVIDIA driver on this host)"
    try:
        proc = await asyncio.create_subprocess_exec(
            exe, f"--query-gpu={NVIDIA_SMI_QUERY}", "--format=csv,noheader,nounits",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL)
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (OSError, TimeoutError) as exc:
        return [], f"none (nvidia-smi failed: {exc})"
    if proc.returncode != 0:
        reason = (err or out).decode(errors="replace").strip().splitlines()
        return [], f"none (nvidia-smi: {reason[0] if reason else f'exit {proc.returncode}'})"
    gpus = parse_nvidia_smi(out.decode(errors="replace"))
    return gpus, "" if gpus else "none (nvidia-smi lists no GPUs)"
