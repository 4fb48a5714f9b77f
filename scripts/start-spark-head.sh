#!/usr/bin/env bash
# Start the Spark head-node rig (idempotent): an HDInsight-style head node for `type: cluster`
# over SSH, a container with sshd, Java 17 (from apt, found through JAVA_HOME in the login
# environment) and pyspark (the wheel built on the host by scripts/start-spark.sh, sent in the
# build context: pip cannot reach an index from containers), published on 127.0.0.1 only.
#
# Builds scripts/rig-spark/ into labdeck/rig-spark-head:<hash> when missing, (re)creates the
# container, waits for sshd, and writes .labdeck-rigs/spark-head.json (read by tests/spark/). The
# client key and password are the remote docker rig's (.labdeck-rigs/id_ed25519, password; made
# here when missing). Also downloads numpy's wheel for the head node's Python into the wheel
# cache once (the host reaches PyPI; a run's environment is then made offline from the cache).
# Usage: bash scripts/start-spark-head.sh [--stop]
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
RIGS=$REPO/.labdeck-rigs
BASE=${LABDECK_BASE_IMAGE:-labdeck/python-base:bookworm}
WHEELS=${LABDECK_WHEEL_CACHE:-$HOME/.cache/labdeck/wheels}
NAME=labdeck-rig-spark-head
PORT=${LABDECK_SPARK_HEAD_PORT:-2223}  # fixed: sample_project/aml_config/spark-head.compute names it
PY=$REPO/.venv/bin/python
say() { printf 'start-spark-head: %s\n' "$*" >&2; }
die() { printf 'start-spark-head: ERROR: %s\n' "$*" >&2; exit 1; }

mkdir -p "$RIGS"
exec 9>"$RIGS/.spark-head.lock"
flock 9

if [ "${1:-}" = "--stop" ]; then
    docker rm -f "$NAME" >/dev/null 2>&1 || true
    rm -f "$RIGS/spark-head.json"
    say "stopped $NAME"
    exit 0
fi

docker image inspect "$BASE" >/dev/null 2>&1 || die "base image $BASE missing: run scripts/build-base-image.sh"
[ -x "$PY" ] || { say "making the venv"; make -s .venv/.installed >/dev/null; }
if ! ls "$WHEELS"/pyspark-*.whl >/dev/null 2>&1; then
    mkdir -p "$WHEELS"
    say "building the pyspark wheel into $WHEELS (a 456 MB sdist: about a minute)"
    "$PY" -m pip wheel -q -w "$WHEELS" pyspark
fi
# numpy for the head node's Python (bookworm: 3.11, x86_64): runs' environments take it from here.
if ! ls "$WHEELS"/numpy-*-cp311-*manylinux*x86_64*.whl >/dev/null 2>&1; then
    say "downloading numpy's wheel for the head node (Python 3.11) into $WHEELS"
    "$PY" -m pip download -q --only-binary :all: --no-deps --python-version 3.11 \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_28_x86_64 -d "$WHEELS" numpy
fi

base_id=$(docker image inspect -f '{{.Id}}' "$BASE")
pyspark_whl=$(ls "$WHEELS"/pyspark-*.whl | sort | tail -1)
py4j_whl=$(ls "$WHEELS"/py4j-*.whl | sort | tail -1)
hash=$( (cd scripts/rig-spark && cat Dockerfile entrypoint.sh sshd_config spark-env.sh \
         spark-defaults.conf wrapper.sh yarn-standin/*; cat ../../tests/spark/recorded/*;
         basename "$pyspark_whl"; basename "$py4j_whl"; echo "$base_id") |
       sha256sum | cut -c1-16)
IMAGE=labdeck/rig-spark-head:$hash

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    ctx=$(mktemp -d)
    trap 'rm -rf "$ctx"' EXIT
    cp -r scripts/rig-spark/* "$ctx/"
    cp -r tests/spark/recorded "$ctx/recorded"  # the YARN stand-ins' recorded outputs
    mkdir "$ctx/wheels"
    ln "$pyspark_whl" "$py4j_whl" "$ctx/wheels/" 2>/dev/null || cp "$pyspark_whl" "$py4j_whl" "$ctx/wheels/"
    say "building $IMAGE (apt's JRE and the pyspark wheel: a few minutes)"
    docker build -q --build-arg BASE="$BASE" --label org.labdeck.rig=spark-head \
        -t "$IMAGE" "$ctx" >/dev/null
fi

[ -f "$RIGS/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C labdeck-rig -f "$RIGS/id_ed25519"
[ -f "$RIGS/password" ] || (umask 077; head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$RIGS/password")
password=$(cat "$RIGS/password")
pubkey=$(cat "$RIGS/id_ed25519.pub")
auth=$(printf '%s\n%s\n' "$pubkey" "$password" | sha256sum | cut -c1-16)
current=$(docker inspect -f '{{.Config.Image}} {{.State.Running}} {{index .Config.Labels "org.labdeck.rig-auth"}}' "$NAME" 2>/dev/null || true)
published=$(docker port "$NAME" 22/tcp 2>/dev/null | head -1 | sed 's/.*://' || true)
if [ "$current" != "$IMAGE true $auth" ] || [ "$published" != "$PORT" ]; then
    [ -z "$current" ] || { say "replacing $NAME ($current)"; docker rm -f "$NAME" >/dev/null; }
    say "starting $NAME"
    # No host folder is mounted: a run's files reach the head node only through labdeck's sync.
    docker run -d --name "$NAME" --hostname headnode \
        --label org.labdeck.rig=spark-head --label "org.labdeck.rig-auth=$auth" \
        -e RIG_PASSWORD="$password" -e RIG_AUTHORIZED_KEY="$pubkey" \
        -p "127.0.0.1:$PORT:22" "$IMAGE" >/dev/null
fi

port=$(docker port "$NAME" 22/tcp | head -1 | sed 's/.*://')
[ -n "$port" ] || die "$NAME publishes no port for 22"
banner=""
for _ in $(seq 150); do
    banner=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && head -c 4 <&3" 2>/dev/null || true)
    [ "$banner" = "SSH-" ] && break
    sleep 0.2
done
[ "$banner" = "SSH-" ] || die "sshd of $NAME does not answer on 127.0.0.1:$port (docker logs $NAME)"

host_key=$(docker exec "$NAME" cat /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f1,2)
tmp=$(mktemp "$RIGS/.spark-head.XXXXXX")
cat > "$tmp" <<JSON
{
  "container": "$NAME",
  "image": "$IMAGE",
  "host": "127.0.0.1",
  "port": $port,
  "user": "labdeck",
  "nojava_user": "nojava",
  "yarn_user": "yarnuser",
  "password": "$password",
  "identity_file": "$RIGS/id_ed25519",
  "host_key": "$host_key",
  "wheels": "$WHEELS"
}
JSON
mv "$tmp" "$RIGS/spark-head.json"
say "spark head node: ssh -p $port labdeck@127.0.0.1 (facts in $RIGS/spark-head.json)"
