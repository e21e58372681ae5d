"""A few worker threads for the machine collectors' blocking calls.

Two parts of the snapshot cannot be read on the reactor thread: C{statvfs}
on a stale NFS, CIFS or FUSE mount blocks until the server answers (forever,
on a hard mount), and a scan of a few hundred C{/proc/<pid>/stat} files
takes tens of milliseconds of Python.  Both run here, in a small pool of
their own, so they never queue behind (or hold up) the reactor's pool, which
resolves host names.

The threads are L{pistatsd.workers.DaemonWorkers}: a thread stuck in a
C{statvfs} that never returns is abandoned at SIGTERM after a short grace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorFromThreads

from pistatsd.workers import DaemonWorkers, WorkersStopped

_P = ParamSpec("_P")
_T = TypeVar("_T")


class Runner(Protocol):
    """What the collectors need of a pool: run a blocking callable, answer on the reactor.

    L{WorkerPool} is the real one; tests hand in one that holds each call
    until the test lets it run.
    """

    def run(self, f: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]: ...


#: Work was handed to a L{WorkerPool} that is not running.
PoolStopped = WorkersStopped


class WorkerPool(Service):
    """The machine collectors' L{DaemonWorkers}, started and stopped as a service.

    Work beyond C{max_threads} waits in the pool's queue; callers that may
    block forever (filesystems) bound how many such calls they leave
    outstanding, so the queue always drains.

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
        self._workers = DaemonWorkers(
            reactor,
            max_threads=max_threads,
            grace=grace,
            name=name,
            what="machine",
            abandoned="Leaving {busy} blocked call(s) of the machine collectors at shutdown "
            "(a hung filesystem?); their threads end with the process",
        )
        self.max_threads = max_threads
        #: A reactor that cannot take calls from other threads (a test's
        #: MemoryReactorClock) could never be handed a result: work runs inline.
        self._threaded = IReactorFromThreads.providedBy(reactor)

    @property
    def busy(self) -> int:
        """How many calls have been handed over and not yet answered."""
        return self._workers.busy

    def run(self, f: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]:
        """Call C{f(*args, **kwargs)} in a worker thread; the result arrives on the reactor.

        Fails at once with L{PoolStopped} when the service is not running.
        """
        if self._threaded or not self._workers.running:
            return self._workers.run(f, *args, **kwargs)
        return maybeDeferred(f, *args, **kwargs)

    def startService(self) -> None:
        super().startService()
        self._workers.start()

    def stopService(self) -> Deferred[None]:
        """Refuse new work; stop the threads once idle, or abandon them after the grace."""
        super().stopService()
        return self._workers.stop()
