"""The concurrency and fault section uses the docker fixtures too (the real daemon, its image)."""

from tests.docker.conftest import docker_ready, dproject  # noqa: F401 -- fixtures, by name
