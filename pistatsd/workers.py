"""A small pool of daemon threads for blocking calls that may never return.

Sensors (a 1-Wire read takes ~750 ms, an fsync on a tired SD card longer) and
the machine collectors (C{statvfs} on a stale NFS mount blocks forever, a scan
of C{/proc} takes tens of milliseconds) each keep such a pool, apart from the
reactor's own (which resolves host names), so they never queue behind it.

Twisted's C{ThreadPool.stop} joins every thread: with one thread stuck in a
call that never returns it would hang the daemon at SIGTERM.  So these
threads are daemon threads, and L{DaemonWorkers.stop} waits a short grace
period for work in progress, then leaves whatever still runs to die with the
process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorFromThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

_log = Logger()

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _daemon_thread(*args: Any, **kwargs: Any) -> threading.Thread:
    return threading.Thread(*args, daemon=True, **kwargs)


class _DaemonThreadPool(ThreadPool):
    """A pool whose threads never keep the process alive."""

    # ThreadPool only calls threadFactory(...) as it would threading.Thread, but
    # declares it as that class: a function making daemon threads is not one.
    threadFactory = staticmethod(_daemon_thread)  # type: ignore[assignment]


class WorkersStopped(RuntimeError):
    """Work was handed to L{DaemonWorkers} that are not running.

    A stopped C{ThreadPool} silently drops work: its Deferred would never fire.
    """


class DaemonWorkers:
    """Up to C{max_threads} daemon threads, made lazily as work arrives.

    @param grace: how long L{stop} waits for work in progress before leaving it.
    @param what: what the work is, for the error message (C{"sensor"}, C{"machine"}).
    @param abandoned: the warning logged when L{stop} leaves work behind; a
        format string with C{{busy}}, the number of calls left.
    """

    def __init__(
        self,
        reactor: Any,
        *,
        max_threads: int,
        grace: float,
        name: str,
        what: str,
        abandoned: str,
    ) -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, not {max_threads!r}")
        self._reactor: IReactorFromThreads = reactor
        self._clock: IReactorTime = reactor
        self.max_threads = max_threads
        self._grace = grace
        self._name = name
        self._what = what
        self._abandoned = abandoned
        self._pool: ThreadPool | None = None
        self._busy = 0
        self._idle: list[Deferred[None]] = []

    @property
    def busy(self) -> int:
        """How many calls have been handed over and not yet answered."""
        return self._busy

    @property
    def running(self) -> bool:
        """Whether work is taken."""
        return self._pool is not None

    def start(self) -> None:
        """A fresh pool each start: a stopped (or abandoned) one never runs again."""
        if self._pool is None:
            self._pool = _DaemonThreadPool(0, self.max_threads, self._name)
            self._pool.start()

    def run(self, f: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]:
        """Call C{f(*args, **kwargs)} in a worker thread; the result arrives on the reactor.

        Fails at once with L{WorkersStopped} when not running.
        """
        if self._pool is None:
            return fail(WorkersStopped(f"the {self._what} worker threads are not running"))
        self._busy += 1
        d: Deferred[_T] = deferToThreadPool(self._reactor, self._pool, f, *args, **kwargs)
        d.addBoth(self._done)
        return d

    def stop(self) -> Deferred[None]:
        """Refuse new work; stop the threads once idle, or abandon them after the grace."""
        pool, self._pool = self._pool, None
        if pool is None:
            return succeed(None)
        if not self._busy:
            pool.stop()  # every thread is idle: the joins return at once
            return succeed(None)
        idle: Deferred[None] = Deferred()
        self._idle.append(idle)

        def stopped(_: None) -> None:
            pool.stop()

        def abandoned(reason: Failure) -> None:
            self._idle.remove(idle)
            _log.warn(self._abandoned, busy=self._busy)

        idle.addTimeout(self._grace, self._clock)
        idle.addCallbacks(stopped, abandoned)
        return idle

    def _done(self, result: _T) -> _T:
        self._busy -= 1
        if not self._busy:
            waiting, self._idle = self._idle, []
            for d in waiting:
                d.callback(None)
        return result
