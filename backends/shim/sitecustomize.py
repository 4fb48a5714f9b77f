"""labdeck's start-up hook for a run's Python processes: live output without unbuffered writes.

Python imports ``sitecustomize`` at start from sys.path; labdeck puts this folder on the run's
PYTHONPATH (local and docker), and sets ``LABDECK_FLUSH_S`` (outputenv.py). A pipe makes stdout
block-buffered, which is fast (one write per 8 KiB instead of one or two per print: 5-8x for a
script that logs every step) but not live. So, when stdout is block-buffered:

- a daemon thread flushes stdout and stderr every ``LABDECK_FLUSH_S`` seconds (0.05);
- stderr (line-buffered by Python) flushes stdout before each write, so the two streams keep the
  order in which they were written, as they did unbuffered, a crash's traceback included;
- stdout and stderr are flushed before the process forks, spawns or execs (a child writing to the
  same pipe comes after what was printed before it), at ``os._exit``, at exit (before the
  interpreter's teardown, so the thread never holds the stream then), and on SIGTERM when its
  handler is still the default one (flush, then die of the signal as before).

A script that sets its own buffering (``-u``, ``PYTHONUNBUFFERED``, ``reconfigure``, ``flush=True``)
keeps it: with unbuffered stdout nothing here is installed, and flushing more often is harmless.
Other programs (a JVM, a shell) never load this file. Standard library only, and only modules
that are already loaded at start (plus the built-in ``_thread`` and ``_signal``): it costs a
script well under a millisecond. Afterwards the next ``sitecustomize`` on sys.path (a
distribution's, or the user's) is imported, so this one shadows nothing.
"""

import os
import sys


def _install(interval):
    import _signal
    import _thread
    import io
    import time

    out = sys.__stdout__
    if out is None or getattr(out, "write_through", True) or out.line_buffering:
        return  # unbuffered (-u) or a terminal: output is live already
    lock = _thread.allocate_lock()  # held while flushing: never inside a fork or the teardown
    state = {"stopped": False}  # (and "forking": True while a fork holds the lock)

    def flush_all():
        for stream in (out, sys.__stderr__):
            try:
                if stream is not None:
                    stream.flush()
            except Exception:  # closed, a broken pipe, a reentrant call: nothing to do
                pass

    def loop():
        while True:
            time.sleep(interval)
            with lock:
                if state["stopped"]:
                    return
                flush_all()

    def start():
        _thread.start_new_thread(loop, ())

    def before_fork():
        if not state["stopped"]:  # (stopped: the lock is the exit's for good)
            lock.acquire()
            state["forking"] = True
        flush_all()

    def after_fork_in_parent():
        if state.pop("forking", False):
            lock.release()

    def after_fork_in_child():
        if state.pop("forking", False):
            lock.release()
            start()

    def at_exit():
        # Stop the thread for good before the interpreter's teardown: a daemon thread holding
        # stdout's lock then is a fatal error. The lock is never released again.
        lock.acquire()
        state["stopped"] = True
        flush_all()

    real_exit = os._exit

    def _exit(code):
        flush_all()
        real_exit(code)

    spawns = frozenset({"os.system", "subprocess.Popen", "os.posix_spawn", "os.spawn",
                        "os.exec", "os.forkpty", "pty.spawn"})

    def audit(event, args):
        if event in spawns:
            flush_all()

    def on_sigterm(signum, frame):
        flush_all()
        _signal.signal(signum, _signal.SIG_DFL)
        os.kill(os.getpid(), signum)  # dies of SIGTERM, as without this handler

    class StderrAfterStdout(io.TextIOWrapper):
        """stderr that first hands over what stdout holds: the two keep their order."""

        def write(self, text):
            try:
                out.flush()
            except Exception:
                pass
            return super().write(text)

    err = sys.__stderr__
    if err is not None and type(err) is io.TextIOWrapper:
        try:
            mine = StderrAfterStdout(err.detach(), encoding=err.encoding, errors=err.errors,
                                     newline="\n", line_buffering=err.line_buffering,
                                     write_through=err.write_through)
        except Exception:
            mine = None
        if mine is not None:
            if sys.stderr is err:
                sys.stderr = mine
            sys.__stderr__ = mine
    os._exit = _exit
    os.register_at_fork(before=before_fork, after_in_parent=after_fork_in_parent,
                        after_in_child=after_fork_in_child)
    sys.addaudithook(audit)
    if _signal.getsignal(_signal.SIGTERM) == _signal.SIG_DFL:
        _signal.signal(_signal.SIGTERM, on_sigterm)
    import atexit  # built in

    atexit.register(at_exit)
    start()


def _chain():
    """Import the next ``sitecustomize`` on sys.path, as if this one were not there."""
    here = os.path.dirname(os.path.abspath(__file__))
    me = sys.modules.pop(__name__)
    saved = sys.path[:]
    sys.path[:] = [p for p in saved if os.path.abspath(p or os.curdir) != here]
    try:
        import sitecustomize  # noqa: F401 -- the next one, which stays in sys.modules
    except ImportError as err:
        sys.modules[__name__] = me  # none: the import that runs this one expects it there
        if err.name != "sitecustomize":
            raise
    finally:
        sys.path[:] = saved


def _trace_start(path):
    """LABDECK_TRACE=1 (backends/phasetrace.py): when the script's interpreter got here."""
    import time

    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, f"trace {time.time():.6f} script start\n".encode())
        finally:
            os.close(fd)
    except OSError:
        pass


if os.environ.get("LABDECK_TRACE_FILE"):
    _trace_start(os.environ["LABDECK_TRACE_FILE"])
_interval = os.environ.get("LABDECK_FLUSH_S")
if _interval:
    try:
        _install(max(0.001, float(_interval)))
    except ValueError:
        pass
del _interval
_chain()
