#!/usr/bin/env bash
# Start the test rigs (idempotent): today the "remote Docker host" of the remotedocker tests, a
# container running OpenSSH's sshd and its own Docker Engine, published on 127.0.0.1 only.
#
# Builds scripts/rig/ into labdeck/rig-remotedocker:<hash> when that tag is missing (the hash
# covers the rig's files and the base image's id), (re)creates the container when it is missing,
# stopped or of another image, waits until sshd and the inner daemon answer, loads the base
# image into the inner daemon when it is missing there, and writes the connection facts to
# .labdeck-rigs/remotedocker.json (read by tests/remote/). Needs the base image
# (scripts/build-base-image.sh). Usage: bash scripts/start-rigs.sh [--stop]
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
RIGS=$REPO/.labdeck-rigs
BASE=${LABDECK_BASE_IMAGE:-labdeck/python-base:bookworm}
NAME=labdeck-rig-remotedocker
VOLUME=labdeck-rig-remotedocker-docker
say() { printf 'start-rigs: %s\n' "$*" >&2; }
die() { printf 'start-rigs: ERROR: %s\n' "$*" >&2; exit 1; }

mkdir -p "$RIGS"
exec 9>"$RIGS/.lock"
flock 9  # one starter at a time (parallel test sessions wait for the first)

if [ "${1:-}" = "--stop" ]; then
    docker rm -f "$NAME" >/dev/null 2>&1 || true
    docker volume rm "$VOLUME" >/dev/null 2>&1 || true
    rm -f "$RIGS/remotedocker.json"
    say "stopped $NAME"
    exit 0
fi

docker image inspect "$BASE" >/dev/null 2>&1 || die "base image $BASE missing: run scripts/build-base-image.sh"
base_id=$(docker image inspect -f '{{.Id}}' "$BASE")
hash=$( (cd scripts/rig && cat Dockerfile entrypoint.sh sshd_config; echo "$base_id") | sha256sum | cut -c1-16)
IMAGE=labdeck/rig-remotedocker:$hash

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    say "building $IMAGE (apt: about a minute)"
    docker build -q --build-arg BASE="$BASE" --label org.labdeck.rig=remotedocker \
        -t "$IMAGE" scripts/rig >/dev/null
fi

# The client's key and the users' password: made once, kept with the facts.
[ -f "$RIGS/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C labdeck-rig -f "$RIGS/id_ed25519"
[ -f "$RIGS/password" ] || (umask 077; head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$RIGS/password")
password=$(cat "$RIGS/password")
pubkey=$(cat "$RIGS/id_ed25519.pub")

# The container outlives this checkout (a CI clone elsewhere makes its own key and password):
# its label says which credentials it was started with, and other ones replace it.
auth=$(printf '%s\n%s\n' "$pubkey" "$password" | sha256sum | cut -c1-16)
current=$(docker inspect -f '{{.Config.Image}} {{.State.Running}} {{index .Config.Labels "org.labdeck.rig-auth"}}' "$NAME" 2>/dev/null || true)
if [ "$current" != "$IMAGE true $auth" ]; then
    [ -z "$current" ] || { say "replacing $NAME ($current)"; docker rm -f "$NAME" >/dev/null; }
    say "starting $NAME"
    # --privileged is refused on this machine kind (RIGS.md): this capability set works. No host
    # folder is mounted: the client's files must reach the rig only through labdeck's sync.
    docker run -d --name "$NAME" --hostname rig \
        --label org.labdeck.rig=remotedocker --label "org.labdeck.rig-auth=$auth" \
        --cap-add ALL --cap-drop SYS_RESOURCE \
        --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
        --security-opt systempaths=unconfined \
        --device-cgroup-rule 'a *:* rwm' --device /dev/fuse \
        -v "$VOLUME:/var/lib/docker" \
        -e RIG_PASSWORD="$password" -e RIG_AUTHORIZED_KEY="$pubkey" \
        -p 127.0.0.1::22 "$IMAGE" >/dev/null
fi

port=$(docker port "$NAME" 22/tcp | head -1 | sed 's/.*://')
[ -n "$port" ] || die "$NAME publishes no port for 22"

for _ in $(seq 150); do
    banner=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && head -c 4 <&3" 2>/dev/null || true)
    [ "$banner" = "SSH-" ] && break
    sleep 0.2
done
[ "$banner" = "SSH-" ] || die "sshd of $NAME does not answer on 127.0.0.1:$port (docker logs $NAME)"
for _ in $(seq 150); do
    docker exec "$NAME" docker version >/dev/null 2>&1 && break
    sleep 0.2
done
docker exec "$NAME" docker version >/dev/null 2>&1 ||
    die "the inner Docker daemon of $NAME does not answer (docker exec $NAME cat /var/log/dockerd.log)"

if ! docker exec "$NAME" docker image inspect "$BASE" >/dev/null 2>&1; then
    say "loading $BASE into the rig's daemon"
    docker save "$BASE" | docker exec -i "$NAME" docker load -q >/dev/null
fi

host_key=$(docker exec "$NAME" cat /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f1,2)
tmp=$(mktemp "$RIGS/.remotedocker.XXXXXX")
cat > "$tmp" <<JSON
{
  "container": "$NAME",
  "image": "$IMAGE",
  "host": "127.0.0.1",
  "port": $port,
  "user": "labdeck",
  "nodocker_user": "nodocker",
  "nofwd_user": "nofwd",
  "password": "$password",
  "identity_file": "$RIGS/id_ed25519",
  "host_key": "$host_key",
  "base_image": "$BASE"
}
JSON
mv "$tmp" "$RIGS/remotedocker.json"
say "remotedocker rig: ssh -p $port labdeck@127.0.0.1 (facts in $RIGS/remotedocker.json)"
