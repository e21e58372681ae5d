"""The one thread that touches the database, and an inline stand-in for tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

T = TypeVar("T")


class Worker(Protocol):
    """Runs blocking calls one at a time, in order, off the reactor thread."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def run(self, f: Callable[..., T], *args: object) -> Deferred[T]: ...


class DatabaseThread:
    """A L{ThreadPool} of exactly one thread: SQLite calls never overlap and keep order."""

    def __init__(self, reactor: IReactorFromThreads, name: str = "history") -> None:
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name=name)

    def start(self) -> None:
        self._pool.start()

    def stop(self) -> None:
        """Waits for the running call (the last flush) to finish; called at shutdown."""
        self._pool.stop()

    def run(self, f: Callable[..., T], *args: object) -> Deferred[T]:
        return deferToThreadPool(self._reactor, self._pool, f, *args)


class InlineWorker:
    """Runs each call at once on the calling thread (tests on a L{task.Clock})."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def run(self, f: Callable[..., T], *args: object) -> Deferred[T]:
        try:
            return succeed(f(*args))
        except BaseException:
            return fail(Failure())
