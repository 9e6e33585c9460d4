"""Child processes that die with their parent, even when the parent is killed with SIGKILL and
has no chance to stop them: the local Prefect server, loader workers, torchrun.

On Linux the kernel does it: ``prctl(PR_SET_PDEATHSIG)`` sends the child a signal when the
thread that started it ends. A child started by a go-between (a DataLoader worker, forked by
multiprocessing's fork server, which outlives its client) watches the process it works for
instead (:func:`exit_with`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1
# resolved here, in the parent: a child between fork and exec must not search for libraries
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent(sig: int = signal.SIGTERM, parent: int | None = None) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent ends; exit at once when
    the parent (pid ``parent``, if known) is already gone. Call in the child: a ``preexec_fn``,
    a worker's init function. True when the kernel took the request."""
    if _LIBC is None:
        return False
    with contextlib.suppress(OSError, AttributeError):
        if _LIBC.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
        if parent is not None and os.getppid() != parent:
            os._exit(1)  # the parent died before the request was made: nothing will signal
        return True
    return False


def start_logged(
    argv: list[str], env: dict[str, str], log: Path, mode: str = "wb"
) -> subprocess.Popen[bytes]:
    """``argv`` started with its output (stdout and stderr) in ``log`` (``mode``: "wb" or "ab"),
    SIGTERMed when this process ends."""
    parent = os.getpid()
    with open(log, mode) as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=lambda: die_with_parent(signal.SIGTERM, parent),
        )


def running(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie, dead but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = f"/proc/{pid}/stat"
    if os.path.exists(stat):
        with contextlib.suppress(OSError, IndexError), open(stat) as fh:
            return fh.read().rsplit(") ", 1)[1][0] != "Z"
    return True


def exit_with(pid: int, every: float = 1.0) -> threading.Thread:
    """In a child whose parent is not ``pid`` (a DataLoader worker forked by a fork server):
    a daemon thread that ends this process once ``pid`` is no longer running."""

    def watch() -> None:
        while running(pid):
            time.sleep(every)
        os._exit(1)  # the process this one works for is gone: nothing will read its output

    thread = threading.Thread(target=watch, name="crnn-exit-with-parent", daemon=True)
    thread.start()
    return thread
