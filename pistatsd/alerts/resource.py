"""C{/api/alerts}, C{/api/alerts/history} and C{/api/alerts/test}: the REST face of the alerts.

Reads are open and answered from memory.  The test message is a mutation
(it makes every notifier send something), so it is guarded exactly like a
sensor change (L{MutationGuard}: the API token, or a client on this machine
not relayed by a proxy).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource
from twisted.web.server import NOT_DONE_YET, Request

from pistatsd.alerts.changelog import ChangeLog
from pistatsd.alerts.events import AlertChange, AlertStatus, CurrentAlerts
from pistatsd.jsontypes import JSONObject
from pistatsd.numbers import integer
from pistatsd.sensors.resource import MutationGuard
from pistatsd.web.responses import JSONNotFound, JSONResource, json_body, json_error

_log = Logger()

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def status_document(alert: AlertStatus) -> JSONObject:
    """One alert as C{/api/alerts} lists it."""
    return {
        "name": alert.name,
        "series": alert.series,
        "state": alert.state,
        "since": alert.since,
        "value": alert.value,
        "severity": alert.severity,
    }


def change_document(change: AlertChange) -> JSONObject:
    """One change as C{/api/alerts/history} lists it."""
    return {
        "name": change.name,
        "state": change.state,
        "from": change.previous,
        "time": change.time,
        "value": change.value,
    }


def _limit(request: Request) -> int | str:
    """C{?limit=N}, or the error message for a bad one."""
    raw = (request.args or {}).get(b"limit")
    if raw is None:
        return DEFAULT_LIMIT
    if len(raw) != 1:
        return "limit given more than once"
    value = integer(raw[0]) if raw[0][:1].isdigit() else None
    if value is None or not 1 <= value <= MAX_LIMIT:
        return f"limit must be a whole number from 1 to {MAX_LIMIT}"
    return value


class AlertsResource(JSONResource):
    """C{GET /api/alerts}: every alert as it stands now."""

    allowedMethods = (b"GET", b"HEAD")

    def __init__(self, current: CurrentAlerts) -> None:
        super().__init__()
        self._current = current

    def getChild(self, path: bytes, request: Request) -> IResource:
        if path == b"":
            return self
        return JSONNotFound()

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"cache-control", b"no-store")
        return json_body(request, {"alerts": [status_document(a) for a in self._current()]})


class AlertHistoryResource(JSONResource):
    """C{GET /api/alerts/history?limit=N}: the newest changes first."""

    isLeaf = True
    allowedMethods = (b"GET", b"HEAD")

    def __init__(self, log: ChangeLog) -> None:
        super().__init__()
        self._log = log

    def render_GET(self, request: Request) -> bytes:
        limit = _limit(request)
        if isinstance(limit, str):
            return json_error(request, 400, limit)
        request.setHeader(b"cache-control", b"no-store")
        changes = self._log.recent(limit)
        return json_body(request, {"history": [change_document(c) for c in changes]})


class AlertTestResource(JSONResource):
    """C{POST /api/alerts/test}: a test message through every notifier; answers each result."""

    isLeaf = True
    allowedMethods = (b"POST",)

    def __init__(
        self, send_test: Callable[[], Deferred[Mapping[str, str]]], guard: MutationGuard
    ) -> None:
        super().__init__()
        self._send_test = send_test
        self._guard = guard

    def render_POST(self, request: Request) -> bytes | int:
        refused = self._guard.refuse(request)
        if refused is not None:
            return refused
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def answer(results: Mapping[str, str]) -> bytes:
            return json_body(request, {"notifiers": dict(results)})

        def failed(reason: Failure) -> bytes:
            _log.failure("alerts: the test message failed", failure=reason)
            return json_error(request, 500, "internal server error")

        def write(body: bytes) -> None:
            if not gone:
                request.write(body)
                request.finish()

        d = maybeDeferred(self._send_test)
        d.addCallbacks(answer, failed).addCallback(write)
        d.addErrback(lambda f: _log.failure("alerts: could not answer", failure=f))
        return NOT_DONE_YET
