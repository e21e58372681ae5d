"""The background sampler: one snapshot per interval, shared by every reader.

Requests never call psutil.  A L{LoopingCall} on the injected clock takes a
snapshot every C{interval} seconds and keeps it (with its JSON encoding,
made once) for C{/stats}, the broadcast and the history; on-demand CPU
measurements (C{/stats?interval=S}) are two CPU readings S seconds apart,
scheduled on the same clock, so nothing ever sleeps or blocks the reactor.

Two clocks, kept apart: the injected clock (the reactor, monotonic in the
daemon) schedules the samples and measures CPU windows and the history's
reach, so a stepped wall clock neither stops sampling nor empties or floods
C{/stats/history}; the C{wall} callable stamps each snapshot with the date.
"""

from __future__ import annotations

import json
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from math import ceil
from typing import Any, Protocol, TypeVar

from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from pistatsd.episodes import Episode
from pistatsd.loops import guarded
from pistatsd.sysinfo import CpuReading, Snapshot, SystemCollector, cpu_section

_log = Logger()

_R = TypeVar("_R")

READING_REUSE_SECONDS = 0.005
"""CPU readings younger than this are shared between measurements.

The kernel's CPU counters tick every 10 ms, so two readings a few
milliseconds apart are the same numbers: when many C{?interval=} requests
start or finish together, one reading serves them all.
"""


class SnapshotPart(Protocol):
    """A collector that owns some top-level keys of the snapshot (C{disk_io}, C{fans}, ...).

    C{section} is called once per sample with the sample's clock time (so a
    collector can turn counters into rates) and returns the keys it owns.
    It runs on the reactor thread every sample: it must be cheap, never
    block and never raise (a missing source gives nulls, not an exception).
    """

    def section(self, when: float) -> Mapping[str, Any]:
        """This part's keys for the sample taken at clock time C{when}."""
        ...


class TooManyMeasurements(Exception):
    """Refused: C{max_pending} CPU measurements are already in progress.

    Raised synchronously by L{Sampler.measure_cpu} so the web layer can
    answer 503 at once instead of holding yet another request open.
    """


class Sampler(TimerService):
    """Samples the machine every C{interval} seconds on the given clock.

    Owns its lifecycle: the loop starts in L{startService} (after a first,
    warm-up sample, so L{latest} is always there once running) and stops,
    with every pending measurement, in L{stopService}.
    """

    name = "sampler"

    def __init__(
        self,
        clock: IReactorTime,
        interval: float = 1.0,
        history_seconds: float = 3600.0,
        collector: SystemCollector | None = None,
        max_pending: int = 10000,
        wall: Callable[[], float] = time.time,
        sections: Sequence[Callable[[], Mapping[str, Any]]] = (),
        parts: Sequence[SnapshotPart] = (),
        observers: Sequence[Callable[[Snapshot], None]] = (),
    ) -> None:
        """
        @param clock: the reactor (or a L{twisted.internet.task.Clock} in tests).
        @param interval: seconds between samples.
        @param history_seconds: how far back L{history} reaches; this bounds memory.
        @param collector: what reads the machine; a real L{SystemCollector} by default.
        @param max_pending: how many on-demand CPU measurements may run at once.
        @param wall: the wall clock (epoch seconds) that stamps the snapshots.
        @param sections: extra snapshot sections from other parts of the
            daemon (sensor readings): each returns a mapping merged into
            every snapshot.  They must be cheap and never block: they run
            on every sample.
        @param parts: collectors of the whole machine (SPEC section 11) whose
            sections are added to every snapshot.
        @param observers: told of every new snapshot once it is published (the
            history store); cheap, on the reactor.  One that fails is logged
            once per episode and the others are still told.
        """
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval!r}")
        super().__init__(interval, guarded(self.sample, "sampling"))
        self.clock = clock
        self._clock = clock
        self._wall = wall
        self.interval = interval
        self.history_seconds = history_seconds
        self.collector = collector if collector is not None else SystemCollector()
        self.max_pending = max_pending
        self.parts: tuple[SnapshotPart, ...] = tuple(parts)
        self._observers = tuple(observers)
        self._failing_parts: set[int] = set()
        # The ring keeps each snapshot as (clock time, its JSON bytes compressed):
        # the JSON is made once per sample anyway, and zlib at level 1 makes it a
        # third (about 0.9 of 2.7 KB for a whole machine, in ~25 us a sample, ~6 us
        # to read back): an hour at 1 s is ~3 MB instead of ~10 MB of JSON, or far
        # more as dicts; the history is read rarely.  The clock time, not the
        # wall-clock timestamp, says how recent a snapshot is.
        self._history: deque[tuple[float, bytes]] = deque(
            maxlen=max(1, ceil(history_seconds / interval))
        )
        self._latest: Snapshot | None = None
        self._latest_json: bytes | None = None
        self._sampling_failures = Episode(
            _log,
            "Sampling failed; keeping the previous snapshot until it works again",
            "Sampling works again after {n} failures",
            level=LogLevel.critical,
            count_field="n",
        )
        self._pending: dict[Deferred[Snapshot], IDelayedCall] = {}
        self._refusals = Episode(
            _log,
            "{limit} CPU measurements in progress; refusing more until one ends",
            "Accepting CPU measurements again after refusing {n}",
            count_field="n",
        )
        self._recent_reading: CpuReading | None = None
        self._last_measured: tuple[CpuReading, CpuReading, Snapshot, Snapshot] | None = None
        self.sections = tuple(sections)

    def startService(self) -> None:
        """Take the warm-up sample now, then one every C{interval} (L{TimerService})."""
        super().startService()

    def stopService(self) -> None:
        """Stop sampling and cancel pending measurements so shutdown never waits.

        The loop stops at once (its Deferred has already fired), so there is
        nothing for twistd to wait for.
        """
        for measurement in list(self._pending):
            measurement.cancel()
        super().stopService()

    @property
    def latest(self) -> Snapshot:
        """The newest snapshot: shared, so callers must not mutate it.

        @raise RuntimeError: before the first successful sample (the service
            was not started, or the collector has never worked).
        """
        if self._latest is None:
            raise RuntimeError("no snapshot yet: the sampler has not sampled")
        return self._latest

    @property
    def latest_json(self) -> bytes:
        """L{latest} as UTF-8 JSON, encoded once per sample, not per request."""
        if self._latest_json is None:
            raise RuntimeError("no snapshot yet: the sampler has not sampled")
        return self._latest_json

    def history(self, seconds: float | None = None) -> list[Snapshot]:
        """Kept snapshots, oldest first; only the last C{seconds} when given."""
        return [json.loads(encoded) for encoded in self.history_encoded(seconds)]

    def history_encoded(self, seconds: float | None = None) -> list[bytes]:
        """Like L{history}, as each snapshot's JSON bytes (no decoding, for serving)."""
        return list(self.iter_history_encoded(seconds))

    def iter_history_encoded(self, seconds: float | None = None) -> Iterator[bytes]:
        """Like L{history_encoded}, each snapshot decompressed only once it is reached.

        For readers that take turns of the reactor between pieces (the series
        queries): an hour of snapshots takes milliseconds to decompress.  The
        snapshots are chosen at the call, so samples taken meanwhile change
        nothing of what the iteration gives.
        """
        return (zlib.decompress(packed) for packed in self._packed(seconds))

    def _packed(self, seconds: float | None) -> list[bytes]:
        """The compressed snapshots of the last C{seconds} (all when None), oldest first."""
        if seconds is None:
            return [packed for _, packed in self._history]
        since = self._clock.seconds() - seconds
        return [packed for _, packed in self._newest(lambda taken: taken >= since)]

    def _newest(self, wanted: Callable[[float], bool]) -> list[tuple[float, bytes]]:
        """The newest ring entries whose clock time is C{wanted}, oldest first.

        Walked from the newest end: a reader of the last minutes touches only those.
        """
        recent: list[tuple[float, bytes]] = []
        for entry in reversed(self._history):
            if not wanted(entry[0]):
                break
            recent.append(entry)
        recent.reverse()
        return recent

    def history_after(self, taken: float) -> list[tuple[float, bytes]]:
        """C{(clock time, JSON)} of the kept snapshots taken after C{taken}, oldest first.

        For readers that keep what they made of the older ones (the
        broadcast's hello): only the new snapshots are decompressed.
        """
        newer = self._newest(lambda when: when > taken)
        return [(when, zlib.decompress(packed)) for when, packed in newer]

    def sample(self) -> None:
        """Take one snapshot now and publish it; never raises.

        A L{LoopingCall} stops for good when its function fails, so failures
        are caught here: logged once when they start (not every interval),
        and the previous snapshot stays in place until sampling works again.
        """
        try:
            now = self._clock.seconds()
            snapshot = self.collector.collect(now, timestamp=self._wall())
            for part in self.parts:
                snapshot.update(self._section_of(part, now))
            for section in self.sections:
                snapshot.update(section())
            encoded = json.dumps(snapshot).encode("utf-8")
        except Exception:
            self._sampling_failures.happened(Failure())
            return
        self._latest = snapshot
        self._latest_json = encoded
        self._history.append((now, zlib.compress(encoded, 1)))
        self._sampling_failures.ended()
        for observer in self._observers:
            self._guarded(observer, "Snapshot observer", observer, snapshot)

    def _section_of(self, part: SnapshotPart, now: float) -> Mapping[str, Any]:
        """C{part.section(now)}; a part that breaks its promise costs its own keys only
        (missing from the snapshot until it works again)."""
        section = self._guarded(part, "Snapshot part", part.section, now)
        return {} if section is None else section

    def _guarded(self, who: object, kind: str, call: Callable[..., _R], *args: object) -> _R | None:
        """C{call(*args)}, or None when it fails: logged once per episode of C{who}, with
        the traceback, and once more when it works again."""
        try:
            result = call(*args)
        except Exception:
            if id(who) not in self._failing_parts:
                self._failing_parts.add(id(who))
                _log.failure("{kind} {who!r} failed; left out until it works", kind=kind, who=who)
            return None
        if id(who) in self._failing_parts:
            self._failing_parts.discard(id(who))
            _log.info("{kind} {who!r} works again", kind=kind, who=who)
        return result

    def measure_cpu(self, seconds: float) -> Deferred[Snapshot]:
        """CPU usage measured over the next C{seconds}, from now.

        Fires with a new dict: a shallow copy of L{latest} whose C{cpu} covers
        exactly the measured window and whose C{timestamp} is its end.  The
        Deferred can be cancelled (e.g. when the client goes away), which
        frees the slot at once.

        @raise TooManyMeasurements: when C{max_pending} are already running.
        """
        assert seconds > 0, seconds
        if len(self._pending) >= self.max_pending:
            self._refusals.happened(limit=self.max_pending)
            raise TooManyMeasurements(f"{self.max_pending} CPU measurements already in progress")
        self._refusals.ended()
        try:
            before = self._read_cpu()
        except Exception:
            return fail()
        measurement: Deferred[Snapshot] = Deferred(canceller=self._cancel_measurement)
        call = self._clock.callLater(seconds, self._finish_measurement, measurement, before)
        self._pending[measurement] = call
        return measurement

    @property
    def pending_measurements(self) -> int:
        """How many on-demand CPU measurements are in progress."""
        return len(self._pending)

    def _finish_measurement(self, measurement: Deferred[Snapshot], before: CpuReading) -> None:
        """Second reading: build the result and fire the measurement."""
        del self._pending[measurement]
        try:
            after = self._read_cpu()
            if after is before:  # a window too short to share readings across
                after = self._read_cpu(fresh=True)
            result = self._measured(before, after)
        except Exception:
            measurement.errback()
            return
        measurement.callback(result)

    def _measured(self, before: CpuReading, after: CpuReading) -> Snapshot:
        """The result for a window; shared by every measurement over the same readings.

        A burst of requests that arrived together finishes together on shared
        readings: they get one result object (which the web layer also
        encodes once), not a thousand copies.
        """
        latest = self.latest
        cached = self._last_measured
        if (
            cached is not None
            and cached[0] is before
            and cached[1] is after
            and cached[2] is latest
        ):
            return cached[3]
        result = dict(latest)
        result["cpu"] = cpu_section(before, after)
        result["timestamp"] = after.when if after.timestamp is None else after.timestamp
        self._last_measured = (before, after, latest, result)
        return result

    def _cancel_measurement(self, measurement: Deferred[Snapshot]) -> None:
        """Canceller: drop the timer and the slot; Deferred errbacks CancelledError."""
        call = self._pending.pop(measurement, None)
        if call is not None and call.active():
            call.cancel()

    def _read_cpu(self, fresh: bool = False) -> CpuReading:
        """A CPU reading now, shared with others taken within a few milliseconds."""
        now = self._clock.seconds()
        recent = self._recent_reading
        if not fresh and recent is not None and 0 <= now - recent.when < READING_REUSE_SECONDS:
            return recent
        self._recent_reading = self.collector.read_cpu(now, timestamp=self._wall())
        return self._recent_reading
