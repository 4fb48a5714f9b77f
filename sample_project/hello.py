# A tiny script for quick demos and tests: prints a few lines, logs a scalar
# metric and a series, and writes outputs/hello.txt.
# `azureml.logging` is provided by labdeck.

import os
import platform

from azureml.logging import get_azureml_logger

run_logger = get_azureml_logger()

print("Hello from labdeck!")
print("Python", platform.python_version(), "on", platform.node() or "unknown host")

run_logger.log("answer", 42)
run_logger.log("loss", [0.9, 0.5, 0.3])

with open(os.path.join("outputs", "hello.txt"), "w", encoding="utf-8") as f:
    f.write("Hello from labdeck!\n")
print("Wrote outputs/hello.txt")
