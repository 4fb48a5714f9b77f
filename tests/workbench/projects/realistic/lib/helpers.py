"""A helper on the runconfig's PYTHONPATH (EnvironmentVariables)."""

GREETING = "hello from lib"
