"""Running the few blocking steps of sensors (file reads, fsync) off the reactor thread.

Reading a DS18B20 through 1-Wire sysfs takes about 750 ms, and an fsync on a
tired SD card can take longer: inline, either would freeze every client.  A
small dedicated pool (L{pistatsd.workers.DaemonWorkers}) keeps them away
from the reactor and from the reactor's own pool (DNS lookups); shutdown does
not wait for a read the kernel never finishes: SIGTERM must still exit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar, TypeVarTuple

from twisted.internet.defer import Deferred, maybeDeferred, succeed

from pistatsd.reactors import IPistatsdReactor
from pistatsd.workers import DaemonWorkers

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
        self._workers = DaemonWorkers(
            reactor,
            max_threads=max_threads,
            grace=grace,
            name=name,
            what="sensor",
            abandoned="Leaving {busy} blocking sensor operation(s) unfinished at shutdown",
        )

    def start(self) -> None:
        """Allow threads to be created (lazily, as work arrives)."""
        self._workers.start()

    def __call__(self, f: Callable[[*Ts], T], *args: *Ts) -> Deferred[T]:
        return self._workers.run(f, *args)

    def stop(self) -> Deferred[None]:
        """Stop the pool: at once when idle, else after the work ends or the grace period."""
        return self._workers.stop()
