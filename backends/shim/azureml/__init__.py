"""labdeck's stand-in for the retired ``azureml`` Workbench package (logging only)."""
