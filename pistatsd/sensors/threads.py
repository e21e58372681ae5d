"""Running the few blocking steps of sensors (file reads, fsync) off the reactor thread.

Reading a DS18B20 through 1-Wire sysfs takes about 750 ms, and an fsync on a
tired SD card can take longer: inline, either would freeze every client.  A
small dedicated pool keeps them away from the reactor and from the reactor's
own pool (DNS lookups).  Its threads are daemon threads and shutdown does
not wait for a read the kernel never finishes: SIGTERM must still exit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, TypeVarTuple

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorFromThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from pistatsd.reactors import IPistatsdReactor

_log = Logger()

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class BlockingRunner(Protocol):
    """Runs a blocking callable somewhere harmless and reports through a Deferred."""

    def __call__(self, f: Callable[[*Ts], T], *args: *Ts) -> Deferred[T]: ...

    def start(self) -> None: ...

    def stop(self) -> Deferred[None]: ...


class InlineRunner:
    """Runs the callable at once, in the caller's thread.

    For tests driven by a L{twisted.internet.task.Clock}, which has no threads;
    results arrive synchronously, which keeps such tests simple.
    """

    def __call__(self, f: Callable[[*Ts], T], *args: *Ts) -> Deferred[T]:
        return maybeDeferred(f, *args)

    def start(self) -> None:
        """Nothing to start."""

    def stop(self) -> Deferred[None]:
        """Nothing to stop."""
        return succeed(None)


def _daemon_thread(*args: Any, **kwargs: Any) -> threading.Thread:
    return threading.Thread(*args, daemon=True, **kwargs)


class _DaemonThreadPool(ThreadPool):
    """A pool whose threads never keep the process alive."""

    # ThreadPool only calls threadFactory(...) as it would threading.Thread, but
    # declares it as that class: a function making daemon threads is not one.
    threadFactory = staticmethod(_daemon_thread)  # type: ignore[assignment]


class ThreadedRunner:
    """A small pool of daemon threads, started and stopped with the sensors service.

    @param grace: how long L{stop} waits for work in progress before leaving
        it to die with the process.
    """

    def __init__(
        self,
        reactor: IPistatsdReactor,
        max_threads: int = 2,
        grace: float = 2.0,
        name: str = "pistatsd-sensors",
    ) -> None:
        self._reactor: IReactorFromThreads = reactor
        self._clock: IReactorTime = reactor
        self._pool = _DaemonThreadPool(0, max_threads, name)
        self._grace = grace
        self._busy = 0
        self._idle: list[Deferred[None]] = []
        self._running = False

    def start(self) -> None:
        """Allow threads to be created (lazily, as work arrives)."""
        if not self._running:
            self._running = True
            if self._pool.joined:  # restarted after a stop: a stopped pool stays stopped
                self._pool = _DaemonThreadPool(0, self._pool.max, self._pool.name)
            self._pool.start()

    def __call__(self, f: Callable[[*Ts], T], *args: *Ts) -> Deferred[T]:
        if not self._running:
            # A stopped ThreadPool silently drops work: its Deferred would never fire.
            return fail(RuntimeError("the sensor worker threads are stopped"))
        self._busy += 1
        d = deferToThreadPool(self._reactor, self._pool, f, *args)
        d.addBoth(self._done)
        return d

    def _done(self, result: T) -> T:
        self._busy -= 1
        if not self._busy:
            waiting, self._idle = self._idle, []
            for d in waiting:
                d.callback(None)
        return result

    def stop(self) -> Deferred[None]:
        """Stop the pool: at once when idle, else after the work ends or the grace period."""
        if not self._running:
            return succeed(None)
        self._running = False
        if not self._busy:
            self._pool.stop()
            return succeed(None)
        idle: Deferred[None] = Deferred()
        self._idle.append(idle)

        def gave_up(reason: Failure) -> None:
            _log.warn(
                "Leaving {busy} blocking sensor operation(s) unfinished at shutdown",
                busy=self._busy,
            )
            self._idle.remove(idle)

        def stopped(_: None) -> None:
            self._pool.stop()

        idle.addTimeout(self._grace, self._clock)
        idle.addCallbacks(stopped, gave_up)
        return idle
