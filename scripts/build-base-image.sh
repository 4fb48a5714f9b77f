#!/usr/bin/env bash
# Build the offline labdeck Python base image from Debian packages.
#
# This machine's Docker Engine cannot reach any image registry, so
# `FROM python:3.11-slim` (or even `FROM debian:bookworm`) can never be pulled.
# Instead we debootstrap a minimal Debian rootfs from the apt mirror the host
# already uses and `docker import` it as labdeck/python-base:bookworm.
#
# Usage: scripts/build-base-image.sh [--force] [--tag NAME]
#   --force     rebuild even if the image already exists
#   --tag NAME  image name to create (default: labdeck/python-base:bookworm)
#
# Environment overrides (optional):
#   LABDECK_DEBIAN_MIRROR           e.g. http://deb.debian.org/debian
#   LABDECK_DEBIAN_SECURITY_MIRROR  e.g. http://deb.debian.org/debian-security
#
# Verbose output of debootstrap/apt/docker goes to $LOG (kept after the run).
set -Eeuo pipefail

PROG=build-base-image
SUITE=bookworm
TAG=labdeck/python-base:bookworm
FORCE=0
LOG=/var/tmp/labdeck-build-base-image.log
LOCK=/var/tmp/labdeck-build-base-image.lock
INCLUDE_PKGS=python3,python3-pip,python3-venv,ca-certificates,procps
IMAGE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

WORK=""
ROOTFS=""
STEP="starting"
START=$SECONDS

# fd 3 = the real stderr, so messages survive a failure inside a redirected call.
exec 3>&2
say() { printf '%s: %s\n' "$PROG" "$*" >&3; }
die() { printf '%s: ERROR: %s\n' "$PROG" "$*" >&3; exit 1; }
usage() { sed -n '9,11p' "$0" | sed 's/^# \{0,1\}//'; }

# Any failing command: one line naming the step and the log, then exit 1.
on_err() {
    local rc=$? n=${#BASH_LINENO[@]}
    trap - ERR
    # BASH_LINENO[n-2] is the line in the main script, even if the failing
    # command was inside a helper function.
    printf '%s: ERROR: %s failed (exit %s, line %s); see %s\n' \
        "$PROG" "$STEP" "$rc" "${BASH_LINENO[n-2]}" "$LOG" >&3
    exit 1
}
trap on_err ERR

# Unmount anything still mounted below $WORK (deepest first), then delete it.
# rm uses --one-file-system so a leftover bind mount can never be recursed into.
cleanup() {
    local m
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        while read -r m; do
            umount -l "$m" 2>/dev/null || true
        done < <(awk -v w="$WORK" '$2 == w || index($2, w "/") == 1 {print $2}' /proc/mounts | sort -r)
        rm -rf --one-file-system "$WORK" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

while [[ $# -gt 0 ]]; do
    case "$1" in
        --force) FORCE=1 ;;
        --tag)
            [[ $# -ge 2 && -n "$2" ]] || die "--tag needs a value"
            TAG=$2; shift ;;
        --tag=*) TAG=${1#--tag=}; [[ -n "$TAG" ]] || die "--tag needs a value" ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
    shift
done

[[ $EUID -eq 0 ]] || die "must run as root (debootstrap and chroot need it)"
command -v docker >/dev/null || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "cannot talk to the Docker daemon"

# One build at a time (concurrent runs would race on the tag and the log).
exec 9>"$LOCK"
flock -n 9 || die "another build is already running (lock $LOCK)"

if [[ $FORCE -eq 0 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
    say "$TAG already exists; nothing to do (use --force to rebuild)"
    exit 0
fi
OLD_ID=$(docker image inspect -f '{{.Id}}' "$TAG" 2>/dev/null || true)

: >"$LOG"
say "building $TAG (log: $LOG)"

# --- mirror: the one the host's apt already uses for $SUITE -----------------
# Prints the first URI serving suite $1 from deb822 (*.sources) or one-line
# (sources.list / *.list) files. Disabled/renamed files are not read.
find_mirror() {
    local suite=$1 f uri=""
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        if [[ "$f" == *.sources ]]; then
            uri=$(awk -v s="$suite" '
                function flush() {
                    if (enabled && types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " s " ") && uris != "") {
                        split(uris, u, " "); print u[1]; found = 1; exit
                    }
                    types = suites = uris = ""; enabled = 1
                }
                BEGIN { enabled = 1 }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                { line = $0; key = tolower(line); sub(/:.*/, "", key); sub(/^[^:]*:[ \t]*/, "", line) }
                key == "types"   { types = line }
                key == "suites"  { suites = line }
                key == "uris"    { uris = line }
                key == "enabled" { enabled = (tolower(line) != "no") }
                END { if (!found) flush() }
            ' "$f")
        else
            uri=$(awk -v s="$suite" '
                $1 == "deb" {
                    i = 2
                    if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                    if ($(i + 1) == s) { print $i; exit }
                }
            ' "$f")
        fi
        if [[ -n "$uri" ]]; then printf '%s\n' "$uri"; return 0; fi
    done
    return 0
}

STEP="detecting the apt mirror"
MIRROR=${LABDECK_DEBIAN_MIRROR:-$(find_mirror "$SUITE")}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
MIRROR=${MIRROR%/}
SEC_MIRROR=${LABDECK_DEBIAN_SECURITY_MIRROR:-$(find_mirror "$SUITE-security")}
SEC_MIRROR=${SEC_MIRROR:-http://deb.debian.org/debian-security}
SEC_MIRROR=${SEC_MIRROR%/}
HOST_CODENAME=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
[[ "$HOST_CODENAME" == "$SUITE" ]] || say "note: host is '${HOST_CODENAME:-unknown}', building $SUITE anyway"
say "mirror: $MIRROR (security: $SEC_MIRROR)"

# --- debootstrap -------------------------------------------------------------
STEP="installing debootstrap"
if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # Only refresh the package lists when the cached ones cannot deliver it.
    if ! apt-get install -y --no-install-recommends debootstrap >>"$LOG" 2>&1; then
        apt-get update >>"$LOG" 2>&1
        apt-get install -y --no-install-recommends debootstrap >>"$LOG" 2>&1
    fi
    command -v debootstrap >/dev/null || die "debootstrap still missing after apt-get install"
fi

STEP="creating the work dir"
WORK=$(mktemp -d /var/tmp/labdeck-base.XXXXXX)
ROOTFS=$WORK/rootfs
mkdir -p "$ROOTFS"

KEYRING_ARGS=()
[[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] &&
    KEYRING_ARGS=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)

STEP="debootstrap"
say "debootstrap --variant=minbase $SUITE (a few minutes)"
t0=$SECONDS
debootstrap --variant=minbase --include="$INCLUDE_PKGS" "${KEYRING_ARGS[@]}" \
    "$SUITE" "$ROOTFS" "$MIRROR" >>"$LOG" 2>&1
say "debootstrap done in $((SECONDS - t0))s"

# --- configure inside the rootfs ---------------------------------------------
in_root() { chroot "$ROOTFS" /usr/bin/env -i PATH="$IMAGE_PATH" HOME=/root \
    DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }

STEP="configuring the rootfs"
mountpoint -q "$ROOTFS/proc" || mount -t proc proc "$ROOTFS/proc"
# No daemons may start while we install into the chroot.
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"
[[ -s "$ROOTFS/etc/resolv.conf" ]] || cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"

# Same layout as the host: main + updates + security, so derived images can
# apt-get install and we ship current security fixes.
rm -f "$ROOTFS/etc/apt/sources.list"
cat >"$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SEC_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

# Keep derived images small too (same idea as the official debian images).
cat >"$ROOTFS/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' >"$ROOTFS/etc/apt/apt.conf.d/docker-no-languages"
cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/labdeck-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF

STEP="apt-get update/upgrade in the rootfs"
say "applying $SUITE-updates/-security and extra packages"
in_root apt-get update >>"$LOG" 2>&1
in_root apt-get -y -o Dpkg::Options::=--force-confold dist-upgrade >>"$LOG" 2>&1
if in_root apt-cache show python-is-python3 >/dev/null 2>&1; then
    in_root apt-get install -y --no-install-recommends python-is-python3 >>"$LOG" 2>&1
else
    say "python-is-python3 not available; 'python' will not exist"
fi

# PEP 668: let `pip install` work in derived images. A dpkg diversion (not a
# plain rm) keeps a later `apt-get upgrade` of libpython3.X-stdlib from putting
# the marker back.
STEP="removing EXTERNALLY-MANAGED"
for marker in "$ROOTFS"/usr/lib/python3.*/EXTERNALLY-MANAGED; do
    [[ -e "$marker" ]] || continue
    rel=${marker#"$ROOTFS"}
    in_root dpkg-divert --local --rename --divert "$rel.labdeck-disabled" --add "$rel" >>"$LOG" 2>&1
    rm -f "$ROOTFS$rel.labdeck-disabled" "$ROOTFS$rel"
done
if compgen -G "$ROOTFS/usr/lib/python3.*/EXTERNALLY-MANAGED" >/dev/null; then
    die "EXTERNALLY-MANAGED is still present in the rootfs"
fi

STEP="cleaning the rootfs"
in_root apt-get clean >>"$LOG" 2>&1
umount "$ROOTFS/proc"
rm -f "$ROOTFS/usr/sbin/policy-rc.d"
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
    "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/archives/partial/* \
    "$ROOTFS"/var/cache/debconf/*-old "$ROOTFS"/var/lib/dpkg/*-old \
    "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
    "$ROOTFS"/usr/share/groff/* "$ROOTFS"/usr/share/lintian/* \
    "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/* "$ROOTFS"/root/.cache
find "$ROOTFS/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete
find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
find "$ROOTFS/var/log" -type f -exec truncate -s 0 {} +
# Docker supplies these at run time; don't ship the build host's copies.
rm -f "$ROOTFS/etc/resolv.conf" "$ROOTFS/etc/hostname"
: >"$ROOTFS/etc/hostname"

# --- import --------------------------------------------------------------------
STEP="docker import"
say "importing as $TAG"
tar --numeric-owner --xattrs --xattrs-include='security.capability' -C "$ROOTFS" \
    --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . |
    docker import \
        --change "ENV PATH=$IMAGE_PATH" \
        --change 'ENV PYTHONUNBUFFERED=1' \
        --change 'CMD ["python3"]' \
        --change 'WORKDIR /' \
        --change 'LABEL org.labdeck.base=1' \
        --message "labdeck base: debootstrap $SUITE minbase from $MIRROR" \
        - "$TAG" >>"$LOG"

# Drop the image this tag pointed at before a --force rebuild (best effort:
# it stays if containers or derived images still use it).
NEW_ID=$(docker image inspect -f '{{.Id}}' "$TAG")
if [[ -n "$OLD_ID" && "$OLD_ID" != "$NEW_ID" ]]; then
    docker image rm "$OLD_ID" >>"$LOG" 2>&1 || say "old image ${OLD_ID:7:12} still in use; left in place"
fi

STEP="smoke test"
docker run --rm "$TAG" python3 -c 'import ssl, venv, pip' >>"$LOG" 2>&1

SIZE=$(docker image inspect -f '{{.Size}}' "$TAG")
PYVER=$(docker run --rm "$TAG" python3 -c 'import platform; print(platform.python_version())')
say "built $TAG (${NEW_ID:7:12}): $((SIZE / 1000000)) MB, Python $PYVER, in $((SECONDS - START))s"
