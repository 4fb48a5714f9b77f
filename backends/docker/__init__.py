"""The docker target family: the Engine API reached through a transport, a run's container, its
environment image. Kept empty on purpose: the early start imports ``backends.docker.early`` and
friends before asyncio exists, so nothing heavy may load with the package itself."""
