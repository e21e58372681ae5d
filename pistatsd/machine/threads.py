"""A few worker threads for the machine collectors' blocking calls.

Two parts of the snapshot cannot be read on the reactor thread: C{statvfs}
on a stale NFS, CIFS or FUSE mount blocks until the server answers (forever,
on a hard mount), and a scan of a few hundred C{/proc/<pid>/stat} files
takes tens of milliseconds of Python.  Both run here, in a small pool of
their own, so they never queue behind (or hold up) the reactor's pool, which
resolves host names.

Twisted's C{ThreadPool.stop} joins every thread: with one thread stuck in a
C{statvfs} that never returns, it would hang the daemon at SIGTERM.  So
these threads are daemon threads, and L{WorkerPool.stopService} waits a
short grace period for work in progress, then leaves whatever is still
running to die with the process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
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

    threadFactory = staticmethod(_daemon_thread)  # type: ignore[assignment]


class Runner(Protocol):
    """What the collectors need of a pool: run a blocking callable, answer on the reactor.

    L{WorkerPool} is the real one; tests hand in one that holds each call
    until the test lets it run.
    """

    def run(self, f: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]: ...


class PoolStopped(RuntimeError):
    """Work was handed to a L{WorkerPool} that is not running."""


class WorkerPool(Service):
    """A bounded pool of daemon threads, started and stopped as a service.

    Threads are made lazily, as work arrives, up to C{max_threads}; work
    beyond that waits in the pool's queue.  Callers that may block forever
    (filesystems) bound how many such calls they leave outstanding, so the
    queue always drains.

    @param grace: how long L{stopService} waits for work in progress before
        abandoning it.
    """

    def __init__(
        self,
        reactor: Any,
        max_threads: int = 4,
        grace: float = 1.0,
        name: str = "pistatsd-machine",
    ) -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, not {max_threads!r}")
        self._reactor: IReactorFromThreads = reactor
        self._clock: IReactorTime = reactor
        #: A reactor that cannot take calls from other threads (a test's
        #: MemoryReactorClock) could never be handed a result: work runs inline.
        self._threaded = IReactorFromThreads.providedBy(reactor)
        self.max_threads = max_threads
        self._grace = grace
        self._name = name
        self._pool: ThreadPool | None = None
        self._busy = 0
        self._idle: list[Deferred[None]] = []

    @property
    def busy(self) -> int:
        """How many calls have been handed over and not yet answered."""
        return self._busy

    def run(self, f: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]:
        """Call C{f(*args, **kwargs)} in a worker thread; the result arrives on the reactor.

        Fails at once with L{PoolStopped} when the service is not running (a
        stopped C{ThreadPool} would silently drop the work, and the Deferred
        would never fire).
        """
        if self._pool is None:
            return fail(PoolStopped("the machine worker threads are not running"))
        if not self._threaded:
            return maybeDeferred(f, *args, **kwargs)
        self._busy += 1
        d: Deferred[_T] = deferToThreadPool(self._reactor, self._pool, f, *args, **kwargs)
        d.addBoth(self._done)
        return d

    def startService(self) -> None:
        """A fresh pool each start: a stopped (or abandoned) one never runs again."""
        super().startService()
        self._pool = _DaemonThreadPool(0, self.max_threads, self._name)
        self._pool.start()

    def stopService(self) -> Deferred[None]:
        """Refuse new work; stop the threads once idle, or abandon them after the grace."""
        super().stopService()
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
            _log.warn(
                "Leaving {busy} blocked call(s) of the machine collectors at shutdown "
                "(a hung filesystem?); their threads end with the process",
                busy=self._busy,
            )

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
