"""File sensor reads in worker threads: one read per sensor at a time, and stuck ones noticed.

A sysfs read can take most of a second (1-Wire) or never finish (a wedged
driver).  A sensor whose read is still running is not read again: whoever
asks joins the running read.  A read that has run for too long is reported
once, so the sensor shows an error instead of its old value for ever.
"""

from __future__ import annotations

from collections.abc import Callable

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from pistatsd.sensors.confine import Confinement, ReadError
from pistatsd.sensors.model import FileSensor, Reading, scaled
from pistatsd.sensors.threads import BlockingRunner

_log = Logger()


@define(eq=False)
class _PendingRead:
    """A file read in a worker thread, and who waits for it."""

    started: float
    waiters: list[Deferred[None]] = field(factory=list)
    reported_stuck: bool = False

    def wait(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.waiters.append(d)
        return d


class FileReads:
    """Reads file sensors through C{blocking}, confined to the allowed roots."""

    def __init__(
        self, clock: IReactorTime, confinement: Confinement, blocking: BlockingRunner
    ) -> None:
        self._clock = clock
        self._confinement = confinement
        self._blocking = blocking
        self._reads: dict[FileSensor, _PendingRead] = {}

    def read(
        self, sensor: FileSensor, done: Callable[[FileSensor, Reading], None]
    ) -> Deferred[None]:
        """Read C{sensor} (or join its read in progress); C{done} gets the reading,
        then the result fires.  Never fails."""
        pending = self._reads.get(sensor)
        if pending is not None:
            return pending.wait()
        pending = _PendingRead(self._clock.seconds())
        self._reads[sensor] = pending
        waiter = pending.wait()  # before the read: an inline read finishes at once
        d: Deferred[float] = self._blocking(self._confinement.read_number, sensor.path)
        d.addCallbacks(
            lambda raw: scaled(raw, sensor),
            self._read_failed,
            errbackArgs=(sensor,),
        ).addCallback(self._finished, sensor, done).addErrback(self._unexpected, sensor)
        return waiter

    def stuck(self, after: float) -> list[FileSensor]:
        """Sensors whose read has run for C{after} seconds, each reported once."""
        now = self._clock.seconds()
        found = []
        for sensor, pending in self._reads.items():
            if not pending.reported_stuck and now - pending.started >= after:
                pending.reported_stuck = True
                found.append(sensor)
        return found

    def _read_failed(self, reason: Failure, sensor: FileSensor) -> Reading:
        if reason.check(ReadError):
            return Reading.failed(str(reason.value))
        _log.failure("Unexpected error reading sensor {name}", failure=reason, name=sensor.name)
        return Reading.failed("internal error while reading")

    def _finished(
        self, reading: Reading, sensor: FileSensor, done: Callable[[FileSensor, Reading], None]
    ) -> None:
        pending = self._reads.pop(sensor)
        done(sensor, reading)
        for waiter in pending.waiters:
            waiter.callback(None)

    def _unexpected(self, reason: Failure, sensor: FileSensor) -> None:
        _log.failure("Unexpected error recording sensor {name}", failure=reason, name=sensor.name)
