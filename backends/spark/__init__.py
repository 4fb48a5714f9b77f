"""Spark runs (Framework PySpark): spark-submit command lines, the local and standalone-cluster
targets, the master's REST submission server, and what a run's Spark log tells (app id, UI)."""
