"""labdeck's stand-in for the retired ``azureml`` Workbench package: it provides
``azureml.logging`` only. The package's path is extended over every ``azureml`` folder on
sys.path (as the azureml-* distributions do themselves), so the user's own ``azureml.*``
packages (azureml.dataprep, azureml.api, today's azureml-core...) still import beside it."""

__path__ = __import__("pkgutil").extend_path(__path__, __name__)
