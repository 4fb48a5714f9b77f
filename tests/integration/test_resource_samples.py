"""Both supervisors sample a local run's CPU and memory into resources.jsonl while it runs: the
synchronous one (a plain local run started early) and the asyncio one (here a sharedVolumes
run), the latter as every docker run is."""

import json

import pytest

from tests.conftest import Project

BUSY = """
import time
block = bytearray(64 << 20)          # 64 MiB resident
for i in range(0, len(block), 4096):
    block[i] = 1
end = time.monotonic() + 3.5
while time.monotonic() < end:        # a core busy for 3.5 s
    pass
print("done")
"""


@pytest.mark.parametrize("target", ["local", "shared"])
def test_a_running_script_is_sampled(project: Project, target: str) -> None:
    project.write("aml_config/shared.compute", 'type: "local"\nsharedVolumes: true\n')
    project.write("busy.py", BUSY)
    result = project.cli("submit", "-c", target, "busy.py", check=True, timeout=120)
    run_id = result.stdout.split()[0]
    path = project.root / ".labdeck" / "runs" / run_id / "resources.jsonl"
    samples = [json.loads(line) for line in path.read_text().splitlines()]
    assert samples, "no sample of a 3.5 s run"
    assert max(s["rss"] for s in samples) > 64 << 20
    assert max(s["cpu"] for s in samples) > 20  # a busy core, even on a loaded machine
    assert all(s["t"] > 0 for s in samples)


def test_a_short_run_loads_no_sampler(project: Project) -> None:
    """The first sample comes after 1 s: a quick script's supervisor never imports psutil."""
    project.write("quick.py", "print('hi')\n")
    result = project.cli("submit", "quick.py", check=True)
    run_id = result.stdout.split()[0]
    assert not (project.root / ".labdeck" / "runs" / run_id / "resources.jsonl").exists()
