"""C{GET /stats/series}: the names of the kept series, and their values over any range.

The last hour comes from the sampler's ring (full resolution, always
fresh); anything the ring does not cover comes from the history store,
whose queries run on its own thread, so the reactor only validates, merges
and encodes.  Without a store (C{--history-db none}) the ring alone answers.
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET, Request

from pistatsd.history.api import HistoryBusy, HistoryReader, SeriesData
from pistatsd.history.merge import Axis, Buckets, Values, axis_of, overlay, ring_step
from pistatsd.history.series import flatten
from pistatsd.numbers import integer, plain_decimal
from pistatsd.web.responses import JSON_TYPE, JSONResource, json_error
from pistatsd.web.turns import Turns

_log = Logger()

DEFAULT_SPAN = 3600.0
DEFAULT_POINTS = 600
MAX_POINTS = 5000
MAX_NAMES = 20
MAX_NAME_LENGTH = 200
MAX_SPAN = 10 * 366 * 86400.0
"""Ten years: more than the store keeps; beyond it a range is a mistake."""
RING_SLICE = 50
"""Ring snapshots decoded between two turns of the reactor.

Decoding an hour of snapshots (3600 at 1 s) costs tens of milliseconds on
the development machine and more on a Pi: in slices, requests that arrive
meanwhile (C{/alive}, the broadcast) wait for one slice, not for all."""
RING_LOOKUPS = 200
"""Ring snapshots looked at (decoded or not) between two turns of the reactor."""
RING_CACHES = 4
"""Sets of names whose ring numbers are kept between queries (about 1 MB each
for an hour at 1 s): the dashboard's, the client's, a few more."""
ENCODE_SLICE = 2500
"""Numbers encoded to JSON between two turns of the reactor (about 1.5 ms).

A 30-day answer of three series at 1000 points holds about 12 000 numbers,
7 ms of C{json.dumps} in one piece on the development machine: four such
queries answered back to back held C{/alive} for tens of milliseconds.
Encoded a list at a time, with a turn before a list that would take a slice
past this many numbers, other requests wait for one slice at most."""
RETRY_AFTER = b"1"
"""Seconds a client is asked to wait when the store has too many queries."""


class Ring(Protocol):
    """What the series resource reads from the sampler."""

    interval: float

    @property
    def latest(self) -> Mapping[str, object]: ...

    def iter_history_encoded(self, seconds: float | None = None) -> Iterator[bytes]: ...


class BadQuery(ValueError):
    """A query argument is wrong: the message says which and why (a 400)."""


class Query:
    """A checked C{?names=&from=&to=&points=}."""

    def __init__(self, names: list[str], start: float, end: float, points: int) -> None:
        self.names = names
        self.start = start
        self.end = end
        self.points = points

    @classmethod
    def parse(cls, args: Mapping[bytes, list[bytes]], now: float) -> Query:
        """Check every argument; raise L{BadQuery} for the first that is wrong."""

        def one(key: str) -> bytes | None:
            raw = args.get(key.encode())
            if raw is None:
                return None
            if len(raw) != 1:
                raise BadQuery(f"{key} given more than once")
            return raw[0]

        raw_names = one("names")
        if raw_names is None:
            raise BadQuery("names is required with from, to or points")
        names = _names(raw_names)
        end = now
        raw_to = one("to")
        if raw_to is not None:
            end = _epoch("to", raw_to)
        start = end - DEFAULT_SPAN
        raw_from = one("from")
        if raw_from is not None:
            start = _epoch("from", raw_from)
        if start >= end:
            raise BadQuery("from must be before to")
        if end - start > MAX_SPAN:
            raise BadQuery(f"the range is longer than {MAX_SPAN:.0f} seconds")
        points = DEFAULT_POINTS
        raw_points = one("points")
        if raw_points is not None:
            parsed = integer(raw_points) if raw_points[:1].isdigit() else None
            if parsed is None or not 1 <= parsed <= MAX_POINTS:
                raise BadQuery(f"points must be a whole number from 1 to {MAX_POINTS}")
            points = parsed
        return cls(names, start, end, points)


def _epoch(key: str, raw: bytes) -> float:
    value = plain_decimal(raw)
    if value is None:
        raise BadQuery(f"{key} must be epoch seconds, a plain decimal number")
    return value


def _names(raw: bytes) -> list[str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadQuery("names must be UTF-8") from None
    names: list[str] = []
    for name in text.split(","):
        if not name or len(name) > MAX_NAME_LENGTH:
            raise BadQuery(
                f"names must be comma-separated series names of 1 to {MAX_NAME_LENGTH} characters"
            )
        if name not in names:
            names.append(name)
    if len(names) > MAX_NAMES:
        raise BadQuery(f"at most {MAX_NAMES} names per query")
    return names


class SeriesResource(JSONResource):
    """C{GET /stats/series}: the index, or one query (see L{Query})."""

    isLeaf = True

    def __init__(
        self,
        ring: Ring,
        reader: HistoryReader | None,
        wall: Callable[[], float] = time.time,
        clock: IReactorTime | None = None,
    ) -> None:
        """
        @param ring: the sampler, for its last hour.
        @param reader: the store, or None when there is none (the ring answers alone).
        @param wall: the wall clock: C{to} defaults to now.
        @param clock: the reactor, to let it turn between slices of ring decoding
            and of encoding (L{Turns}); None does everything at once (tests).
        """
        super().__init__()
        self._ring = ring
        self._reader = reader
        self._wall = wall
        self._turns = None if clock is None else Turns(clock)
        #: Per set of names queried lately: each ring snapshot's numbers, by content.
        self._seen: OrderedDict[
            tuple[str, ...], dict[tuple[int, int], tuple[float | None, dict[str, float]]]
        ] = OrderedDict()

    def render_GET(self, request: Request) -> bytes | int:
        args = {k: v for k, v in request.args.items() if k in (b"names", b"from", b"to", b"points")}
        request.setHeader(b"cache-control", b"no-store")
        if not args:
            work = ensureDeferred(self._index())
        else:
            try:
                query = Query.parse(args, self._wall())
            except BadQuery as e:
                return json_error(request, 400, str(e))
            work = ensureDeferred(self._query(query))
        work.addCallbacks(
            self._answer, self._failed, callbackArgs=(request,), errbackArgs=(request,)
        )
        return NOT_DONE_YET

    @staticmethod
    def _answer(body: bytes, request: Request) -> None:
        if request._disconnected:
            return
        request.setResponseCode(200)
        request.setHeader(b"content-type", JSON_TYPE)
        request.write(body)
        request.finish()

    @staticmethod
    def _failed(reason: Failure, request: Request) -> None:
        if request._disconnected:
            return
        if isinstance(reason.value, BadQuery):
            request.write(json_error(request, 400, str(reason.value)))
        elif isinstance(reason.value, HistoryBusy):
            request.setHeader(b"retry-after", RETRY_AFTER)
            request.write(json_error(request, 503, str(reason.value)))
        elif isinstance(reason.value, KeyError):
            request.write(json_error(request, 400, f"unknown series: {reason.value.args[0]}"))
        else:
            _log.failure("A series query failed", failure=reason)
            request.write(json_error(request, 500, "internal server error"))
        request.finish()

    # -- the index ------------------------------------------------------------

    async def _index(self) -> bytes:
        names = set(self._live_names())
        oldest = self._ring_first()
        resolutions: list[dict[str, int]] = []
        if self._reader is not None:
            names.update(await self._reader.names())
            stored = await self._reader.oldest()
            if stored is not None and (oldest is None or stored < oldest):
                oldest = stored
            resolutions = [{"step": r.step, "keep": r.keep} for r in self._reader.resolutions]
        return _dumps({"series": sorted(names), "resolutions": resolutions, "oldest": oldest})

    def _live_names(self) -> list[str]:
        try:
            return list(flatten(self._ring.latest))
        except RuntimeError:  # not sampled yet
            return []

    # -- a query --------------------------------------------------------------

    async def _query(self, query: Query) -> bytes:
        known = set(self._live_names())
        if self._reader is not None:
            known.update(await self._reader.names())
        unknown = [name for name in query.names if name not in known]
        if unknown:
            raise BadQuery("unknown series: " + ",".join(unknown))
        ring_from = self._ring_first()
        step = ring_step(query.start, query.end, query.points, self._ring.interval)
        # The ring's first sample may come a sample or two after a range that
        # starts an hour ago: close enough for the ring's finer steps.
        covered = ring_from is not None and ring_from <= query.start + step
        if self._reader is None or covered:
            axis = Axis.covering(query.start, query.end, step)
            values = await self._ring_values(axis, query.end, query.names)
        else:
            data: SeriesData = await self._reader.query(
                query.names, query.start, query.end, query.points
            )
            # Merging the store's rows took its slice: the ring, the overlay
            # and the encoding get their own.
            await self._turn()
            axis = axis_of(data)
            values = data.values
            if ring_from is not None and ring_from < query.end:
                ring = await self._ring_values(axis, query.end, query.names)
                values = overlay(values, ring, axis, ring_from)
                await self._turn()
        return await self._encode(axis, query.end, values, query.names)

    async def _encode(self, axis: Axis, end: float, values: Values, names: Sequence[str]) -> bytes:
        """The answer's JSON: C{{"from", "to", "step", "t", "values": {name: {"min",
        "avg", "max"}}}}, the bytes C{json.dumps} would give for that dict, made a
        list at a time with a turn of the reactor every L{ENCODE_SLICE} numbers."""
        blank = [None] * axis.count
        pieces = [
            '{"from":',
            _dumps_text(axis.start),
            ',"to":',
            _dumps_text(end),
            ',"step":',
            _dumps_text(axis.step),
            ',"t":',
            _dumps_text(axis.times()),
            ',"values":{',
        ]
        done = axis.count
        for n, name in enumerate(names):
            pieces.append(("," if n else "") + _dumps_text(name) + ":{")
            for f, field in enumerate(("min", "avg", "max")):
                numbers = values.get(name, {}).get(field, blank)
                if done + len(numbers) > ENCODE_SLICE:
                    await self._turn()
                    done = 0
                text = _dumps_text(numbers)
                if "N" in text or "I" in text:
                    # NaN or Infinity (a list of numbers and nulls has no other
                    # capital letter): JSON has neither, such a value is no data.
                    text = _dumps_text(_finite(numbers))
                pieces.append(("," if f else "") + f'"{field}":' + text)
                done += len(numbers)
            pieces.append("}")
        pieces.append("}}")
        return "".join(pieces).encode("utf-8")

    async def _turn(self) -> None:
        """Let the reactor run other work before the next slice (see L{Turns})."""
        if self._turns is not None:
            await self._turns.next()

    def _ring_first(self) -> float | None:
        """The timestamp of the ring's oldest snapshot (one decode)."""
        oldest = next(self._ring.iter_history_encoded(), None)
        return None if oldest is None else float(json.loads(oldest)["timestamp"])

    async def _ring_values(self, axis: Axis, end: float, names: Sequence[str]) -> Values:
        """The ring's snapshots on the axis, bucketed: min, mean and max of C{names}.

        Only the recent snapshots are looked at, and only those not seen by an
        earlier query of the same names are decoded: the dashboard asks for the
        same few series again and again, and a snapshot in the ring never changes.
        The reactor turns every L{RING_SLICE} decodes and L{RING_LOOKUPS} snapshots.
        """
        reach = self._wall() - axis.start + 2 * self._ring.interval
        first, last = axis.start, min(axis.start + axis.step * axis.count, end + 1e-9)
        key = tuple(sorted(names))
        known = self._seen.pop(key, {})
        seen: dict[tuple[int, int], tuple[float | None, dict[str, float]]] = {}
        decoded = 0
        buckets = Buckets(names, axis)
        ring = self._ring.iter_history_encoded(max(reach, self._ring.interval))
        for i, encoded in enumerate(ring):
            # By content, not identity: no reference to the ring's bytes is kept.
            mark = (len(encoded), hash(encoded))
            hit = known.get(mark)
            fresh = hit is None
            if hit is None:
                decoded += 1
                hit = _numbers(encoded, key)
            seen[mark] = hit
            when, numbers = hit
            if when is not None and first <= when < last:
                buckets.add(when, numbers)
            turn = (fresh and decoded % RING_SLICE == 0) or (i + 1) % RING_LOOKUPS == 0
            if turn:
                await self._turn()
        self._seen[key] = seen
        while len(self._seen) > RING_CACHES:
            self._seen.popitem(last=False)
        return buckets.values()


def _numbers(encoded: bytes, names: Sequence[str]) -> tuple[float | None, dict[str, float]]:
    """A ring snapshot's timestamp and its values of C{names}."""
    snapshot = json.loads(encoded)
    when = snapshot.get("timestamp")
    flat = flatten(snapshot)
    numbers = {name: flat[name] for name in names if name in flat}
    stamp = float(when) if isinstance(when, int | float) and not isinstance(when, bool) else None
    return stamp, numbers


def _dumps_text(value: object) -> str:
    """JSON as L{pistatsd.web.responses.json_body} writes it (no spaces)."""
    return json.dumps(value, separators=(",", ":"))


def _dumps(payload: object) -> bytes:
    return _dumps_text(payload).encode("utf-8")


def _finite(values: Sequence[float | None]) -> list[float | None]:
    """JSON has no NaN or infinity: such a value is no data."""
    return [v if v is None or math.isfinite(v) else None for v in values]
