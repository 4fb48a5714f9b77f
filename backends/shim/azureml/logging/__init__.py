"""``from azureml.logging import get_azureml_logger`` as Workbench scripts wrote it."""

from labdeck_metrics import log_metric


class AzureMLLogger:
    def log(self, name, value):
        log_metric(name, value)
        return self

    def get_run_id(self):
        import os

        return os.environ.get("LABDECK_RUN_ID", "")


def get_azureml_logger():
    return AzureMLLogger()


__all__ = ["AzureMLLogger", "get_azureml_logger"]
