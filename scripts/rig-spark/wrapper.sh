#!/bin/sh
# spark-submit & co. for SSH sessions: SPARK_HOME is pip's pyspark package.
SPARK_HOME=$(python3 -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
export SPARK_HOME
exec "$SPARK_HOME/bin/$(basename "$0")" "$@"
