#!/bin/bash
# The rig's PID 1 (under tini): make /sys and the cgroup mounts writable (the container runs with
# the capability set RIGS.md gives instead of --privileged, and they stay read-only), start the
# inner dockerd on the named volume at /var/lib/docker, then sshd in the foreground.
set -euo pipefail

mount -o remount,rw /sys 2>/dev/null || true
awk '$2 ~ "^/sys/fs/cgroup" && $4 ~ /(^|,)ro(,|$)/ {print $2}' /proc/mounts | while read -r m; do
    mount -o remount,rw,bind "$m" 2>/dev/null || mount -o remount,rw "$m" 2>/dev/null || true
done

[ -f /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
for user in labdeck nodocker nofwd; do
    if [ -n "${RIG_PASSWORD:-}" ]; then echo "$user:$RIG_PASSWORD" | chpasswd; fi
    home=/home/$user
    install -d -m 700 -o "$user" -g "$user" "$home/.ssh"
    printf '%s\n' "${RIG_AUTHORIZED_KEY:-}" > "$home/.ssh/authorized_keys"
    chown "$user:$user" "$home/.ssh/authorized_keys"
    chmod 600 "$home/.ssh/authorized_keys"
done

dockerd --storage-driver overlay2 --host unix:///var/run/docker.sock >/var/log/dockerd.log 2>&1 &
exec /usr/sbin/sshd -D -e
