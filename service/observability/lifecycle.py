"""A worker process that outlives its parent stops: ``logreg serve --workers N`` runs N uvicorn workers under
a supervisor, and if the supervisor is killed outright (``kill -9``) nothing else would stop them; they would
keep the port and serve from a process nobody manages.

Each worker asks Linux to send it SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``) and, as a
fallback where that is not available or the parent died first, a watchdog thread checks the parent's pid
once a second; either way the worker shuts down as it does on SIGTERM.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import threading

#: The environment variable through which `logreg serve` tells its workers the supervisor's pid.
PARENT_ENV = "LOGREG_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1
_CHECK_EVERY_SECONDS = 1.0

log = logging.getLogger("service")


def watch_parent() -> threading.Event | None:
    """In a worker of `logreg serve` (``PARENT_ENV`` set and this process's parent), stop with SIGTERM when the
    parent dies. Returns the event that stops the watchdog, or None when not supervised."""
    expected = os.environ.get(PARENT_ENV)
    if expected is None or not expected.isdigit() or os.getpid() == int(expected):
        return None
    parent = int(expected)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    stop = threading.Event()

    def watchdog() -> None:
        while not stop.wait(_CHECK_EVERY_SECONDS):
            if os.getppid() != parent:
                log.warning("the supervising process %d is gone: this worker stops", parent)
                os.kill(os.getpid(), signal.SIGTERM)
                return

    if os.getppid() != parent:  # the parent died before this worker got here
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=watchdog, name="parent-watchdog", daemon=True).start()
    return stop
