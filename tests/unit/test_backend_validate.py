"""Each backend validates its own compute keys (Backend.validate): a plug-in that cannot hand
GPUs to a run refuses a compute asking for them, naming the file and line, where the backend
is loaded: --explain, prepare, target show, and the supervisor before it prepares."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends.base import Backend, Capability
from backends.config import Compute, GpuRequest, load_compute
from backends.docker.backend import DockerBackend
from backends.errors import ConfigError
from backends.local import LocalBackend


def test_a_backend_without_gpus_refuses_a_gpu_compute(tmp_path: Path) -> None:
    path = tmp_path / "box.compute"
    path.write_text('type: "docker"\nbaseDockerImage: "img"\nnvidiaDocker: true\n')
    compute = load_compute(path, [])
    DockerBackend.validate(compute)  # docker declares GPU: fine

    class NoGpus(DockerBackend):
        capabilities = DockerBackend.capabilities - {Capability.GPU}

    with pytest.raises(ConfigError) as err:
        NoGpus.validate(compute)
    assert str(err.value).startswith(f"{path}:3: GPUs are requested")


def test_capabilities_for_a_compute_decide() -> None:
    class PerCompute(LocalBackend):
        @classmethod
        def capabilities_for(cls, compute: Compute) -> frozenset[Capability]:
            return cls.capabilities | ({Capability.GPU} if compute.name == "gpu" else set())

    PerCompute.validate(Compute(name="gpu", type="local", gpus=GpuRequest(count=-1)))
    with pytest.raises(ConfigError):
        PerCompute.validate(Compute(name="cpu", type="local", gpus=GpuRequest(count=-1)))
    assert issubclass(PerCompute, Backend)
