#!/bin/bash
# The head node's PID 1 (under tini): users' keys and password, then sshd in the foreground.
set -euo pipefail
[ -f /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
for user in labdeck nojava yarnuser; do
    if [ -n "${RIG_PASSWORD:-}" ]; then echo "$user:$RIG_PASSWORD" | chpasswd; fi
    home=/home/$user
    install -d -m 700 -o "$user" -g "$user" "$home/.ssh"
    printf '%s\n' "${RIG_AUTHORIZED_KEY:-}" > "$home/.ssh/authorized_keys"
    chown "$user:$user" "$home/.ssh/authorized_keys"
    chmod 600 "$home/.ssh/authorized_keys"
done
exec /usr/sbin/sshd -D -e
