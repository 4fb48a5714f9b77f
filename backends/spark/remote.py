"""What runs on a Spark head node, as text (no I/O here): the probe of its login environment,
the launcher that starts spark-submit detached in its own session, the follower that streams
the driver's output files back over one SSH channel, and the cancel.

The driver never writes to the SSH channel itself: its stdout and stderr go to files in the
run's folder on the head node, so a dropped link (no PTY, no SIGHUP, no broken pipe) leaves it
running; the follower reads those files from an offset (or past a number of lines, for a
supervisor that takes over a run) and ends with the driver's exit status."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from ..errors import TargetError

PID_MARK = "LABDECK-DRIVER-PID"
KILLED = 143  # the driver's process group ended without an exit status: it was killed

# Read in a login shell (sh -l: /etc/profile, /etc/profile.d, ~/.profile), where head nodes set
# HADOOP_CONF_DIR, JAVA_HOME and Spark's location. One key=value a line.
PROBE = r"""
say() { printf '%s=%s\n' "$1" "$2"; }
say hadoop_conf_dir "${HADOOP_CONF_DIR:-}"
say yarn_conf_dir "${YARN_CONF_DIR:-}"
if [ -n "${JAVA_HOME:-}" ]; then
    if [ -x "$JAVA_HOME/bin/java" ]; then say java "$JAVA_HOME/bin/java"; else say java ""; fi
else
    say java "$(command -v java 2>/dev/null)"
fi
say spark_submit "$(command -v spark-submit 2>/dev/null)"
say yarn "$(command -v yarn 2>/dev/null)"
conf="${SPARK_CONF_DIR:-${SPARK_HOME:-/nonexistent}/conf}/spark-defaults.conf"
master=$(sed -n 's/^[[:space:]]*spark\.master[[:space:]=]*//p' "$conf" 2>/dev/null | tail -n 1)
say defaults_master "$(printf '%s' "$master" | tr -d '\r')"
say python "$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)"
say home "$HOME"
"""


@dataclass(frozen=True)
class HeadFacts:
    """What the probe found on the head node."""

    hadoop_conf_dir: str = ""
    yarn_conf_dir: str = ""
    java: str = ""
    spark_submit: str = ""
    yarn: str = ""
    defaults_master: str = ""
    python: str = ""
    home: str = ""

    @property
    def has_yarn(self) -> bool:
        return bool(self.hadoop_conf_dir or self.yarn_conf_dir)


def parse_probe(text: str) -> HeadFacts:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key in HeadFacts.__dataclass_fields__:
            values[key] = value.strip()
    return HeadFacts(**values)


def login(script: str) -> str:
    """``script`` in a login shell of the head node (its profile's environment)."""
    return shlex.join(["sh", "-lc", script])


def launch_script(workdir: str, command: list[str], env: dict[str, str]) -> str:
    """Start ``command`` (spark-submit) detached: its own session (setsid), stdin /dev/null,
    stdout and stderr to driver.out and driver.err beside ``workdir``, its exit status to
    driver.rc once it ends; prints the session's pid (``LABDECK-DRIVER-PID N``)."""
    inner = ('echo $$ > ../driver.pid; "$@" > ../driver.out 2> ../driver.err < /dev/null; '
             'echo $? > ../driver.rc.tmp; mv ../driver.rc.tmp ../driver.rc')
    argv = ["env", *(f"{k}={v}" for k, v in sorted(env.items())), *command]
    return "\n".join([
        f"cd {shlex.quote(workdir)} || exit 97",
        "rm -f ../driver.pid ../driver.rc",
        f"setsid sh -c {shlex.quote(inner)} labdeck-driver {shlex.join(argv)} "
        "> /dev/null 2>&1 < /dev/null &",
        "i=0",
        "while [ ! -s ../driver.pid ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done",
        f'[ -s ../driver.pid ] && echo "{PID_MARK} $(cat ../driver.pid)"',
    ])


def pid_from(output: str) -> int:
    for line in output.splitlines():
        if line.startswith(PID_MARK + " ") and line.split()[-1].isdigit():
            return int(line.split()[-1])
    raise TargetError("the head node did not start spark-submit (no driver pid came back)")


def cancel_script(pgid: int, grace: float, app_id: str | None = None) -> str:
    """SIGTERM to the driver's process group (spark-submit, its Python driver and what they
    started), SIGKILL after ``grace`` s; a YARN application is killed through YARN first (its
    driver may run in a container elsewhere: killing spark-submit leaves it running)."""
    lines = []
    if app_id:
        lines.append(f"yarn application -kill {shlex.quote(app_id)} 2>&1")
    ticks = max(1, int(grace * 10))
    lines += [
        f"kill -TERM -{pgid} 2>/dev/null || exit 0",
        f"i=0; while kill -0 -{pgid} 2>/dev/null && [ $i -lt {ticks} ]; do "
        "sleep 0.1; i=$((i+1)); done",
        f"kill -KILL -{pgid} 2>/dev/null; exit 0",
    ]
    return "\n".join(lines)


# The follower, run as ``python3 -c FOLLOW ROOT MODE OUT ERR``: MODE "bytes" (OUT/ERR are byte
# offsets: a reconnect of the same reader) or "lines" (skip that many lines: a supervisor taking
# over from its log's counts). Frames on stdout: b"o N\n" + N bytes (driver.out), b"e N\n" +
# N bytes (driver.err), each header also giving the file offset its bytes end at ("o N END"),
# then b"x RC\n" (RC "" when the driver was killed without a status).
FOLLOW = r'''
import os, sys, time
root = os.path.expanduser(sys.argv[1])
mode, start = sys.argv[2], [int(sys.argv[3]), int(sys.argv[4])]
names, tags = ("driver.out", "driver.err"), (b"o", b"e")
files = [None, None]
skip = start if mode == "lines" else [0, 0]
out = sys.stdout.buffer
pid = None
def alive(p):
    try:
        os.kill(p, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % p) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
def rc():
    try:
        with open(os.path.join(root, "driver.rc")) as f:
            return f.read().strip()
    except OSError:
        return None
ended, status, quiet = False, None, 0
while True:
    got = False
    for i in (0, 1):
        if files[i] is None:
            try:
                files[i] = open(os.path.join(root, names[i]), "rb")
            except OSError:
                continue
            if mode == "bytes":
                files[i].seek(start[i])
        data = files[i].read(1 << 16)
        while data and skip[i]:
            cut = data.find(b"\n")
            if cut < 0:
                data = b""
                break
            data = data[cut + 1:]
            skip[i] -= 1
        if data:  # with the file offset it ends at: a reconnect resumes there
            out.write(tags[i] + b" %d %d\n" % (len(data), files[i].tell()) + data)
            got = True
    if got:
        out.flush()
        continue
    if ended:
        break
    status = rc()
    if status is not None:
        ended = True
        continue
    if pid is None:
        try:
            with open(os.path.join(root, "driver.pid")) as f:
                pid = int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            pass
    if pid is not None and not alive(pid):
        status = rc()
        ended = True
        continue
    time.sleep(0.05)
out.write(b"x %s\n" % (status or "").encode())
out.flush()
'''


def follow_command(root: str, mode: str, out_start: int, err_start: int) -> str:
    return shlex.join(["python3", "-c", FOLLOW, root, mode, str(out_start), str(err_start)])


def exit_code(status: str) -> int:
    """driver.rc's text as an exit code; a killed driver (no status) as SIGTERM's."""
    return int(status) if status.strip().lstrip("-").isdigit() else KILLED
