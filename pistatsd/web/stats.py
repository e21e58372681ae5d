"""C{/stats}: the sampler's latest snapshot, its parts, its history and on-demand CPU windows."""

from __future__ import annotations

import json
import math

from twisted.internet.defer import CancelledError
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from pistatsd.numbers import plain_decimal
from pistatsd.sampler import Sampler, TooManyMeasurements
from pistatsd.web.responses import JSON_TYPE, JSONNotFound, JSONResource, json_body, json_error

_log = Logger()

MAX_INTERVAL = 10.0

#: The parts of a snapshot served as C{/stats/NAME} (SPEC 3 and 11).  A part
#: the machine lacks (C{throttled} off a Raspberry Pi, or one the collectors
#: do not produce) is a 404 that says so; a part that is present but null
#: (its source failing) is served as null, so clients see the difference.
PARTS = (
    "cpu",
    "temperature",
    "memory",
    "swap",
    "uptime",
    "disk",
    "net",
    "throttled",
    "filesystems",
    "disk_io",
    "processes",
    "fans",
)

#: Parts only some machines have: not advertised in C{/api}.
OPTIONAL_PARTS = frozenset({"throttled"})


def parse_positive(raw: bytes, maximum: float) -> float | None:
    """A plain decimal number in (0, maximum], or None for anything else.

    C{nan}, C{abc}, C{0}, and what only Python reads as a number (C{1_0},
    C{" 1"}, C{1e0}, non-ASCII digits): see L{pistatsd.numbers}.
    """
    value = plain_decimal(raw)
    if value is None or value <= 0 or value > maximum:
        return None
    return value


class StatsResource(JSONResource):
    """C{GET /stats}: the latest snapshot, pre-encoded by the sampler, or a fresh CPU window."""

    def __init__(self, sampler: Sampler, history_seconds: float) -> None:
        super().__init__()
        self._sampler = sampler
        self._encoded: tuple[dict, bytes] | None = None
        for part in PARTS:
            self.putChild(part.encode("ascii"), StatsPart(sampler, part))
        self.putChild(b"history", HistoryResource(sampler, history_seconds))

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"":
            return self
        return JSONNotFound()

    def render_GET(self, request: Request) -> bytes | int:
        interval = request.args.get(b"interval")
        if interval is None:
            request.setHeader(b"content-type", JSON_TYPE)
            request.setHeader(b"cache-control", b"no-store")
            return self._sampler.latest_json
        seconds = parse_positive(interval[0], MAX_INTERVAL)
        if seconds is None:
            return json_error(
                request,
                400,
                f"interval must be a plain decimal number of seconds in (0, {MAX_INTERVAL:g}]",
            )
        try:
            measured = self._sampler.measure_cpu(seconds)
        except TooManyMeasurements:
            request.setHeader(b"retry-after", b"%d" % math.ceil(seconds))
            return json_error(request, 503, "too many pending interval measurements")
        request.notifyFinish().addErrback(lambda _: measured.cancel())
        measured.addCallbacks(
            self._answer, self._failed, callbackArgs=(request,), errbackArgs=(request,)
        )
        return NOT_DONE_YET

    def _answer(self, snapshot: dict, request: Request) -> None:
        if request._disconnected:
            return
        # Requests that finish together share one result: encode it once.
        if self._encoded is None or self._encoded[0] is not snapshot:
            self._encoded = (snapshot, json.dumps(snapshot, separators=(",", ":")).encode())
        request.setHeader(b"content-type", JSON_TYPE)
        request.setHeader(b"cache-control", b"no-store")
        request.write(self._encoded[1])
        request.finish()

    @staticmethod
    def _failed(reason: Failure, request: Request) -> None:
        if reason.check(CancelledError) and request._disconnected:
            return
        if request._disconnected:
            return
        if reason.check(CancelledError):
            request.write(json_error(request, 503, "shutting down"))
        else:
            _log.failure("CPU interval measurement failed", failure=reason)
            request.write(json_error(request, 500, "internal server error"))
        request.finish()


class StatsPart(JSONResource):
    """C{GET /stats/NAME}: one part of the latest snapshot, with the time it was sampled."""

    isLeaf = True

    def __init__(self, sampler: Sampler, part: str) -> None:
        super().__init__()
        self._sampler = sampler
        self._part = part

    def render_GET(self, request: Request) -> bytes:
        snapshot = self._sampler.latest
        if self._part not in snapshot:
            return json_error(request, 404, f"{self._part} is not available on this machine")
        request.setHeader(b"cache-control", b"no-store")
        return json_body(
            request, {"timestamp": snapshot["timestamp"], self._part: snapshot[self._part]}
        )


class HistoryResource(JSONResource):
    """C{GET /stats/history[?seconds=N]}: recent snapshots from the ring buffer, oldest first."""

    isLeaf = True

    def __init__(self, sampler: Sampler, history_seconds: float) -> None:
        super().__init__()
        self._sampler = sampler
        self._max = history_seconds

    def render_GET(self, request: Request) -> bytes:
        raw = request.args.get(b"seconds")
        seconds = None
        if raw is not None:
            seconds = parse_positive(raw[0], self._max)
            if seconds is None:
                return json_error(
                    request, 400, f"seconds must be a plain decimal number in (0, {self._max:g}]"
                )
        snapshots = self._sampler.history_encoded(seconds)
        request.setHeader(b"content-type", JSON_TYPE)
        request.setHeader(b"cache-control", b"no-store")
        return b'{"snapshots":[' + b",".join(snapshots) + b"]}"
