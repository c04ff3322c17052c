"""Run a pure, CPU-bound function in a forked child while this process goes on with other work.

Python runs one thread's code at a time, so the CLI uses one core. Checking a rendered fleet and
serialising its files are independent: with a second core a child renders and checks the fleet —
a fork sees the configs without copying or pickling them — and sends back only its verdict.

Forking is safe only while this process has a single thread (a fork copies the locks other
threads hold, not the threads). Where it is not safe, not available or not worth it,
:func:`start` returns ``None`` and the caller runs the function itself.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

R = TypeVar("R")


def cores() -> int:
    """CPUs this process may run on."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


def start(fn: Callable[[], R], fallback: Callable[[], R] | None = None) -> Pending[R] | None:
    """``fn()`` running in a forked child, or ``None`` where forking is unsafe or useless.

    ``fn`` must not write anything another process could see (files, stdout, network): its
    result is all that comes back. Its result must pickle. Should the child fail, the result is
    ``fallback()`` (by default ``fn()``) run here: it may reuse what this process made meanwhile.
    """
    if not hasattr(os, "fork") or threading.active_count() != 1 or cores() < 2:
        return None
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError:  # no memory or process slot for a child: the caller does the work
        os.close(read_end)
        os.close(write_end)
        return None
    if pid == 0:  # the child: never returns into the caller's code
        code = 1
        try:
            os.close(read_end)
            data = pickle.dumps(fn(), protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write_end, "wb") as out:
                out.write(data)
            code = 0
        except BaseException:
            pass
        finally:
            os._exit(code)  # no atexit handlers, no flushing of the parent's buffers
    os.close(write_end)
    return Pending(pid, read_end, fallback or fn)


class Pending(Generic[R]):
    """A child's result to come. Use as a context manager: leaving it unread stops the child."""

    def __init__(self, pid: int, read_end: int, fallback: Callable[[], R]) -> None:
        self._pid, self._read_end, self._fallback = pid, read_end, fallback
        self._reaped = False

    def result(self) -> R:
        """The child's result; if the child failed, the fallback run here (raising what it
        raises)."""
        read_end, self._read_end = self._read_end, -1
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(self._pid, 0)
        self._reaped = True
        if os.waitstatus_to_exitcode(status) == 0 and data:
            result: R = pickle.loads(data)
            return result
        return self._fallback()

    def __enter__(self) -> Pending[R]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._reaped:
            return
        if self._read_end >= 0:
            os.close(self._read_end)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, signal.SIGKILL)
        os.waitpid(self._pid, 0)
        self._reaped = True
