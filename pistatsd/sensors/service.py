"""The sensors service: definitions, a cache of readings, and the loop that refreshes it.

Everything that reads the machine happens here, on a timer, off the reactor
thread (files) or in child processes (commands).  Everything that is asked
often (every sampler tick, every request) is served from the cache and does
no I/O: L{SensorsService.snapshot_section} and L{SensorsService.readings}
are a dictionary look-up.

Changes (create, replace, delete) are serialised: each one is computed from
the current definitions, saved atomically, and only then made visible, so
what clients see and what survives a restart never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from twisted.application.internet import TimerService
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredLock,
    TimeoutError,
    fail,
    gatherResults,
)
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from pistatsd.episodes import Episodes
from pistatsd.jsontypes import JSONObject
from pistatsd.loops import guarded
from pistatsd.sensors.commands import CommandFailed, CommandRunner, parse_output
from pistatsd.sensors.confine import Confinement
from pistatsd.sensors.filereads import FileReads
from pistatsd.sensors.model import (
    NOT_READ_YET,
    CommandSensor,
    FileSensor,
    Reading,
    Sensor,
    SensorError,
)
from pistatsd.sensors.store import SensorStore
from pistatsd.sensors.threads import BlockingRunner, InlineRunner

_log = Logger()

T = TypeVar("T")

#: The most sensors (TOML and HTTP together) one daemon keeps.
MAX_SENSORS = 256
#: Seconds between refreshes of every reading.
REFRESH_INTERVAL = 5.0
#: How long a create or replace waits for the new sensor's first reading.
FIRST_READ_WAIT = 2.0
#: A file read still running after this long is reported as an error.
STUCK_AFTER = 30.0


def _unreadable() -> Episodes:
    """One episode per sensor that cannot be read: logged when it starts and ends."""
    return Episodes(
        _log, "Sensor {name} cannot be read: {error}{detail}", "Sensor {name} reads again"
    )


class SensorsService(TimerService):
    """User-defined sensors: their definitions and readings.

    Knows nothing of HTTP: C{/api/sensors} (L{pistatsd.sensors.resource})
    calls it, and the sampler and InfluxDB read its cache.
    """

    name = "sensors"

    def __init__(
        self,
        *,
        clock: IReactorTime,
        confinement: Confinement,
        store: SensorStore,
        commands: Sequence[CommandSensor] = (),
        command_runner: CommandRunner | None = None,
        blocking: BlockingRunner | None = None,
        interval: float = REFRESH_INTERVAL,
        max_sensors: int = MAX_SENSORS,
        first_read_wait: float = FIRST_READ_WAIT,
        stuck_after: float = STUCK_AFTER,
    ) -> None:
        """
        @param clock: the reactor, or a L{twisted.internet.task.Clock} in tests.
        @param command_runner: needed when there are C{commands}; it spawns
            processes on the real reactor.
        @param blocking: where file reads and saves run; worker threads in
            the daemon, L{InlineRunner} (the default) in tests.
        """
        if commands and command_runner is None:
            raise ValueError("command sensors need a command runner")
        super().__init__(interval, guarded(self._tick, "sensor refresh"))
        self.clock = clock
        self._clock = clock
        self._confinement = confinement
        self._store = store
        self._commands = {c.name: c for c in commands}
        self._runner = command_runner
        self._blocking: BlockingRunner = blocking if blocking is not None else InlineRunner()
        self.interval = interval
        self.max_sensors = max_sensors
        self._first_read_wait = first_read_wait
        self._stuck_after = stuck_after
        self._files: dict[str, FileSensor] = {}
        #: Saved sensors hidden by a TOML sensor of the same name: kept in the file.
        self._shadowed: dict[str, FileSensor] = {}
        self._cache: dict[str, Reading] = {}
        self._file_reads = FileReads(clock, confinement, self._blocking)
        self._section: JSONObject | None = None
        self._lock = DeferredLock()
        self._unreadable = _unreadable()

    # Lifecycle

    def startService(self) -> None:
        """Load the saved sensors and read everything now, then every C{interval}."""
        self._blocking.start()
        if self._runner is not None:
            self._runner.start()
        self._files.clear()
        self._shadowed.clear()
        for sensor in self._store.load():
            if sensor.name in self._commands:
                _log.warn(
                    "Saved sensor {name} is hidden by the command sensor of the same name "
                    "in the configuration file",
                    name=sensor.name,
                )
                self._shadowed[sensor.name] = sensor
            else:
                self._files[sensor.name] = sensor
        self._cache = {name: NOT_READ_YET for name in self._all_names()}
        self._unreadable = _unreadable()
        self._section = None
        super().startService()  # the first refresh runs now

    def stopService(self) -> Deferred[None]:
        """Stop refreshing, kill running commands, release the worker threads."""
        super().stopService()  # the loop stops at once
        stops = [self._blocking.stop()]
        if self._runner is not None:
            stops.append(self._runner.stop())
        return gatherResults(stops).addCallback(lambda _: None)

    # Cheap views of the cache (no I/O)

    def _all_names(self) -> list[str]:
        return sorted([*self._files, *self._commands])

    def sensor(self, name: str) -> Sensor | None:
        """The definition of sensor C{name}, or None."""
        return self._commands.get(name) or self._files.get(name)

    def reading(self, name: str) -> Reading:
        """The cached reading of sensor C{name}."""
        return self._cache.get(name, NOT_READ_YET)

    def snapshot_section(self) -> JSONObject:
        """C{{"sensors": {name: {"value", "unit", "error"}}}} for the sampler, from the cache.

        Runs on every sampler tick, so the mapping is built once per change
        and shared; it is replaced, never mutated, so old snapshots keep theirs.
        """
        if self._section is None:
            section = {}
            for name in self._all_names():
                sensor = self.sensor(name)
                assert sensor is not None
                reading = self.reading(name)
                section[name] = {
                    "value": reading.value,
                    "unit": sensor.unit,
                    "error": reading.error,
                }
            self._section = {"sensors": section}
        return self._section

    def readings(self) -> dict[str, float | None]:
        """Every sensor's latest value (None when it could not be read), for InfluxDB."""
        return {name: self.reading(name).value for name in self._all_names()}

    def represent(self, name: str) -> JSONObject | None:
        """The SENSOR document of SPEC §5: definition, value, error and links."""
        sensor = self.sensor(name)
        if sensor is None:
            return None
        reading = self.reading(name)
        document = sensor.definition()
        document["value"] = reading.value
        document["error"] = reading.error
        document["links"] = {"self": f"/api/sensors/{name}"}
        return document

    def represent_all(self) -> list[JSONObject]:
        """Every SENSOR document, by name."""
        return [doc for name in self._all_names() if (doc := self.represent(name)) is not None]

    # Changes

    def create(self, sensor: FileSensor, by: str = "-") -> Deferred[JSONObject]:
        """Add a new file sensor; fires with its SENSOR document after its first reading.

        @raise InvalidSensor: at once, if the path leaves the allowed roots.
        @return: fails with L{SensorError} (409 for a taken name or no room,
            500 when the definitions cannot be saved).
        """
        if sensor.name in self._commands:
            return fail(
                SensorError(
                    409,
                    f"sensor {sensor.name!r} already exists (defined in the configuration file)",
                )
            )
        self._confinement.resolve(sensor.path)

        def change(files: dict[str, FileSensor]) -> bool:
            if sensor.name in files:
                raise SensorError(
                    409,
                    f"sensor {sensor.name!r} already exists; "
                    f"PUT /api/sensors/{sensor.name} replaces it",
                )
            self._check_room(files, sensor.name)
            files[sensor.name] = sensor
            return True

        return self._change(change).addCallback(lambda _: self._changed(sensor, "created", by))

    def replace(self, sensor: FileSensor, by: str = "-") -> Deferred[tuple[bool, JSONObject]]:
        """Create or replace a file sensor; fires with (created, SENSOR document).

        @raise InvalidSensor: at once, if the path leaves the allowed roots.
        @return: fails with L{SensorError} (403 for a TOML sensor, 409 for
            no room, 500 when the definitions cannot be saved).
        """
        try:
            self._refuse_read_only(sensor.name, "replaced")
        except SensorError:
            return fail()
        self._confinement.resolve(sensor.path)

        def change(files: dict[str, FileSensor]) -> bool:
            created = sensor.name not in files
            if created:
                self._check_room(files, sensor.name)
            files[sensor.name] = sensor
            return created

        def done(created: bool) -> Deferred[tuple[bool, JSONObject]]:
            d = self._changed(sensor, "created" if created else "replaced", by)
            return d.addCallback(lambda document: (created, document))

        return self._change(change).addCallback(done)

    def delete(self, name: str, by: str = "-") -> Deferred[None]:
        """Remove a file sensor; fails with L{SensorError} 404 or 403 (TOML sensor)."""
        try:
            self._refuse_read_only(name, "deleted")
        except SensorError:
            return fail()

        def change(files: dict[str, FileSensor]) -> None:
            if name not in files:
                raise SensorError(404, f"no sensor named {name!r}")
            del files[name]

        def done(_: None) -> None:
            _log.info("Sensor {name} deleted by {client}", name=name, client=by)

        return self._change(change).addCallback(done)

    def _refuse_read_only(self, name: str, verb: str) -> None:
        if name in self._commands:
            raise SensorError(
                403,
                f"sensor {name!r} is defined in the configuration file "
                f"and cannot be {verb} over HTTP",
            )

    def _check_room(self, files: dict[str, FileSensor], name: str) -> None:
        if len(files) + len(self._commands) >= self.max_sensors:
            _log.warn(
                "Refused to add sensor {name}: the limit of {limit} sensors is reached",
                name=name,
                limit=self.max_sensors,
            )
            raise SensorError(
                409,
                f"too many sensors: at most {self.max_sensors} may be defined; "
                "delete one before adding another",
            )

    def _change(self, change: Callable[[dict[str, FileSensor]], T]) -> Deferred[T]:
        """Apply C{change} to a copy of the definitions, save, then publish; one at a time."""
        return self._lock.run(self._apply, change)

    def _apply(self, change: Callable[[dict[str, FileSensor]], T]) -> Deferred[T]:
        files = dict(self._files)
        try:
            result = change(files)
        except SensorError:
            return fail()
        to_save = [*files.values(), *self._shadowed.values()]
        saving: Deferred[None] = self._blocking(self._store.save, to_save)

        def saved(_: None) -> T:
            self._publish(files)
            return result

        def failed(reason: Failure) -> Failure:
            if isinstance(reason.value, OSError):
                error = reason.value.strerror or str(reason.value)
                _log.error(
                    "Could not save sensor definitions to {path}: {error}",
                    path=self._store.path,
                    error=error,
                )
                return Failure(SensorError(500, f"could not save the sensor definitions: {error}"))
            _log.failure("Could not save sensor definitions", failure=reason)
            return Failure(SensorError(500, "could not save the sensor definitions"))

        return saving.addCallbacks(saved, failed)

    def _publish(self, files: dict[str, FileSensor]) -> None:
        """Make saved definitions current; readings of changed sensors start over."""
        for name, sensor in files.items():
            if self._files.get(name) != sensor:
                self._cache[name] = NOT_READ_YET
                self._unreadable.forget(name)
        for name in self._files.keys() - files.keys():
            self._cache.pop(name, None)
            self._unreadable.forget(name)
        self._files = files
        self._section = None

    def _changed(self, sensor: FileSensor, verb: str, by: str) -> Deferred[JSONObject]:
        """Log a change, then read the sensor, waiting a little for the value."""
        _log.info(
            "Sensor {name} {verb} by {client}: {path}",
            name=sensor.name,
            verb=verb,
            client=by,
            path=sensor.path,
        )
        first = self._read_file(sensor)
        first.addTimeout(self._first_read_wait, self._clock)
        first.addErrback(lambda f: f.trap(TimeoutError, CancelledError))

        def answer(_: object) -> JSONObject:
            document = self.represent(sensor.name)
            if document is None:  # deleted meanwhile
                return {**sensor.definition(), "value": None, "error": "deleted"}
            return document

        return first.addCallback(answer)

    # Reading

    def _tick(self) -> None:
        """The loop's body: start a refresh and do not wait for it.

        Waiting would let one read the kernel never finishes stop the loop,
        and with it every other sensor and the stuck-read report.
        """
        self.refresh()

    def refresh(self) -> Deferred[None]:
        """Start a read of every sensor; fires once all of them are cached. Never fails.

        A sensor whose previous read is still running is not read again: the
        running read's result will do.
        """
        started: list[Deferred[None]] = []
        try:
            for sensor in list(self._files.values()):
                started.append(self._read_file(sensor))
            for command in self._commands.values():
                started.append(self._read_command(command))
            for sensor in self._file_reads.stuck(self._stuck_after):
                if self._files.get(sensor.name) == sensor:
                    self._record(
                        sensor.name,
                        Reading.failed(f"read has not finished after {self._stuck_after:g} s"),
                    )
        except Exception:
            _log.failure("Sensor refresh failed")
        return gatherResults(started, consumeErrors=True).addCallbacks(
            lambda _: None, lambda _: None
        )

    def _read_file(self, sensor: FileSensor) -> Deferred[None]:
        """Read one file sensor (or join its read in progress); fires when cached."""
        return self._file_reads.read(sensor, self._file_read)

    def _file_read(self, sensor: FileSensor, reading: Reading) -> None:
        if self._files.get(sensor.name) == sensor:  # not replaced or deleted meanwhile
            self._record(sensor.name, reading)

    def _read_command(self, sensor: CommandSensor) -> Deferred[None]:
        assert self._runner is not None
        d = self._runner.run(sensor.command, sensor.timeout)
        return (
            d.addCallbacks(
                lambda output: (parse_output(sensor, output), ""),
                self._command_failed,
                errbackArgs=(sensor,),
            )
            .addCallback(lambda outcome: self._record(sensor.name, *outcome))
            .addErrback(self._unexpected, sensor.name)
        )

    def _unexpected(self, reason: Failure, name: str) -> None:
        _log.failure("Unexpected error recording sensor {name}", failure=reason, name=name)

    def _command_failed(self, reason: Failure, sensor: CommandSensor) -> tuple[Reading, str]:
        if isinstance(reason.value, CommandFailed):
            return Reading.failed(reason.value.message), reason.value.detail
        _log.failure("Unexpected error running sensor {name}", failure=reason, name=sensor.name)
        return Reading.failed("internal error while running the command"), ""

    def _record(self, name: str, reading: Reading, detail: str = "") -> None:
        """Cache a reading; log when a sensor starts or stops failing, not on every read."""
        previous = self._cache.get(name, NOT_READ_YET)
        self._cache[name] = reading
        if reading != previous:
            self._section = None
        if reading.error is not None:
            self._unreadable.happened(
                name, name=name, error=reading.error, detail=f" ({detail})" if detail else ""
            )
        else:
            self._unreadable.ended(name, name=name)
