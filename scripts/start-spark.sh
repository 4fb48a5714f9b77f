#!/usr/bin/env bash
# Start the Spark rig (idempotent): a standalone master and one worker on 127.0.0.1, started with
# pip's pyspark (it ships no sbin/ start scripts, RIGS.md), and the facts the tests read in
# .labdeck-rigs/spark.json (spark home, master URL, REST URL, UI URL).
#
# pyspark goes into the project's venv (.venv, made with `make` when missing): the local Spark
# target finds spark-submit there, and scripts import pyspark from it. PyPI publishes pyspark as a
# 456 MB sdist built locally (~66 s): the wheel is built once into a cache folder
# ($LABDECK_WHEEL_CACHE, default ~/.cache/labdeck/wheels) and installed from there afterwards,
# offline, so a new venv (make clean, a CI clone) costs seconds.
#
# The master has its REST submission server on (cluster-mode Python drivers go through it); the
# worker has 2 cores (a cluster-mode driver takes one: with one core no executor ever starts) and
# 1 GB, and starts once the master's port answers (started together, its back-off costs ~15 s).
# Ready when the master's /json/ shows a live worker. Needs Java 17+.
# Usage: bash scripts/start-spark.sh [--stop]
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
RIGS=$REPO/.labdeck-rigs
DIR=$RIGS/spark
PY=$REPO/.venv/bin/python
WHEELS=${LABDECK_WHEEL_CACHE:-$HOME/.cache/labdeck/wheels}
HOST=127.0.0.1
MASTER_PORT=${LABDECK_SPARK_MASTER_PORT:-7077}
UI_PORT=${LABDECK_SPARK_UI_PORT:-8080}
REST_PORT=${LABDECK_SPARK_REST_PORT:-6066}
WORKER_UI_PORT=${LABDECK_SPARK_WORKER_UI_PORT:-8081}
export SPARK_LOCAL_IP=$HOST  # else Spark binds every interface and warns
say() { printf 'start-spark: %s\n' "$*" >&2; }
die() { printf 'start-spark: ERROR: %s\n' "$*" >&2; exit 1; }

mkdir -p "$DIR"
exec 9>"$RIGS/.spark.lock"
flock 9  # one starter at a time (parallel test sessions wait for the first); the JVMs
# get no copy of fd 9, or they would hold the lock for as long as they live

stop_pid() {  # a process this script started (its pid file), never one found by name
    local file=$DIR/$1.pid
    [ -f "$file" ] || return 0
    local pid; pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

if [ "${1:-}" = "--stop" ]; then
    stop_pid worker
    stop_pid master
    rm -f "$RIGS/spark.json"
    say "stopped"
    exit 0
fi

command -v java >/dev/null || [ -n "${JAVA_HOME:-}" ] ||
    die "no Java: Spark 4 needs Java 17+ (apt-get install openjdk-17-jre-headless)"
[ -x "$PY" ] || { say "making the venv"; make -s .venv/.installed >/dev/null; }

# pyspark in the venv, from the wheel cache (built there once).
if ! "$PY" -c 'import pyspark' 2>/dev/null; then
    mkdir -p "$WHEELS"
    if ! ls "$WHEELS"/pyspark-*.whl >/dev/null 2>&1; then
        say "building the pyspark wheel into $WHEELS (a 456 MB sdist: about a minute)"
        "$PY" -m pip wheel -q -w "$WHEELS" pyspark
    fi
    say "installing pyspark into .venv from $WHEELS"
    "$PY" -m pip install -q --no-index --find-links "$WHEELS" pyspark
fi
SPARK_HOME=$("$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
export SPARK_HOME
CLASS=$SPARK_HOME/bin/spark-class
[ -x "$CLASS" ] || die "$CLASS missing: is pyspark's install complete?"

json_field() {  # json_field URL FIELD: a number from the master's /json/ ("" when it is not up)
    "$PY" - "$1" "$2" <<'PY' 2>/dev/null || true
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    print(json.load(r).get(sys.argv[2], ""))
PY
}
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
alive() { [ -f "$DIR/$1.pid" ] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

UI=http://$HOST:$UI_PORT
workers=$(json_field "$UI/json/" aliveworkers)
if ! alive master || ! alive worker || [ "${workers:-0}" -lt 1 ]; then
    stop_pid worker
    stop_pid master
    ! port_open "$MASTER_PORT" || die "port $MASTER_PORT is taken by another program"
    cat > "$DIR/master.properties" <<PROPS
spark.master.rest.enabled true
spark.master.rest.port $REST_PORT
PROPS
    say "starting the master on spark://$HOST:$MASTER_PORT"
    setsid "$CLASS" org.apache.spark.deploy.master.Master --host "$HOST" --port "$MASTER_PORT" \
        --webui-port "$UI_PORT" --properties-file "$DIR/master.properties" \
        >"$DIR/master.log" 2>&1 </dev/null 9>&- &
    echo $! > "$DIR/master.pid"
    for _ in $(seq 300); do port_open "$MASTER_PORT" && break; sleep 0.2; done
    port_open "$MASTER_PORT" || die "the master does not answer on $MASTER_PORT ($DIR/master.log)"
    mkdir -p "$DIR/work"
    say "starting the worker (2 cores, 1g)"
    setsid "$CLASS" org.apache.spark.deploy.worker.Worker --host "$HOST" --cores 2 --memory 1g \
        --webui-port "$WORKER_UI_PORT" --work-dir "$DIR/work" "spark://$HOST:$MASTER_PORT" \
        >"$DIR/worker.log" 2>&1 </dev/null 9>&- &
    echo $! > "$DIR/worker.pid"
    for _ in $(seq 300); do
        workers=$(json_field "$UI/json/" aliveworkers)
        [ "${workers:-0}" -ge 1 ] && break
        sleep 0.2
    done
    [ "${workers:-0}" -ge 1 ] || die "no live worker on the master ($DIR/worker.log)"
fi

tmp=$(mktemp "$RIGS/.spark.XXXXXX")
cat > "$tmp" <<JSON
{
  "spark_home": "$SPARK_HOME",
  "spark_submit": "$SPARK_HOME/bin/spark-submit",
  "master_url": "spark://$HOST:$MASTER_PORT",
  "rest_url": "http://$HOST:$REST_PORT",
  "ui_url": "$UI",
  "work_dir": "$DIR/work",
  "master_pid": $(cat "$DIR/master.pid"),
  "worker_pid": $(cat "$DIR/worker.pid")
}
JSON
mv "$tmp" "$RIGS/spark.json"
say "spark rig: spark://$HOST:$MASTER_PORT, REST http://$HOST:$REST_PORT, UI $UI (facts in $RIGS/spark.json)"
