"""C{/api/sensors} and C{/api/sensors/NAME}: the REST face of the sensors service.

Reads are open to everyone and answered from the service's cache (readings
are refreshed every few seconds and right after each change), as JSON by
default or as one C{name value unit} line per sensor for clients that prefer
C{text/plain}.

Changes need authority: the API token when one is configured, otherwise a
client on this machine.  A loopback connection that carries a proxy's
forwarding header is not "on this machine": behind nginx, every client
arrives over loopback.

Bodies must be sent as C{Content-Type: application/json}; any other type is
a 415 (the body is not looked at), and a JSON body that is not a valid
sensor is a 400 whose message names the field.
"""

from __future__ import annotations

import hmac

from attrs import field, frozen
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource
from twisted.web.server import NOT_DONE_YET, Request

from pistatsd.jsontypes import JSONObject, JSONValue
from pistatsd.sensors.model import (
    FileSensor,
    InvalidSensor,
    SensorError,
    check_name,
    parse_file_sensor,
)
from pistatsd.sensors.service import SensorsService
from pistatsd.web.forwarded import is_local_peer
from pistatsd.web.jsonbody import decode_json_object, is_json_content_type
from pistatsd.web.negotiation import preferred
from pistatsd.web.responses import JSONResource, json_body, json_error, text_body

_log = Logger()

_OFFERS = ("application/json", "text/plain")
#: Shown when a body is JSON but not an object.
_EXAMPLE = '{"name": "room", "path": "/sys/..."}'
#: Headers a reverse proxy adds: their presence means the peer is a relay.
FORWARDING_HEADERS = (b"forwarded", b"x-forwarded-for", b"x-real-ip")


def client_label(request: Request) -> str:
    """Who made a request, for log lines."""
    address = request.getClientAddress()
    host = getattr(address, "host", None)
    return str(host) if host else type(address).__name__


@frozen
class MutationGuard:
    """Decides who may create, replace and delete sensors.

    With a token: C{Authorization: Bearer <token>} (missing: 401, wrong: 403),
    compared in constant time.  Without one: loopback and UNIX-socket clients
    not relayed by a proxy; everyone else gets 403.

    @ivar action: what is guarded, as the refusals say it (C{changing sensors},
        C{sending a test alert}): the same guard serves other mutations.
    """

    token: str | None = field(repr=False)
    action: str = "changing sensors"

    def refuse(self, request: Request) -> bytes | None:
        """The error body to answer with, or None when the request may proceed."""
        if self.token is not None:
            header = request.getHeader(b"authorization") or b""
            scheme, _, credentials = header.strip().partition(b" ")
            credentials = credentials.strip()
            if scheme.lower() != b"bearer" or not credentials:
                request.setHeader(b"www-authenticate", b'Bearer realm="pistatsd"')
                return json_error(
                    request, 401, f"{self.action} needs an Authorization: Bearer <token> header"
                )
            if not hmac.compare_digest(credentials, self.token.encode("utf-8")):
                return json_error(request, 403, "invalid API token")
            return None
        if not is_local_peer(request.getClientAddress()):
            return json_error(
                request,
                403,
                f"{self.action} is allowed only from this machine unless an API token is "
                "configured (--api-token-file)",
            )
        if any(request.getHeader(h) for h in FORWARDING_HEADERS):
            return json_error(
                request,
                403,
                "changes relayed by a proxy need an API token (--api-token-file)",
            )
        return None


def _format_value(value: float | None) -> str:
    return "null" if value is None else repr(value)


def as_text(documents: list[JSONObject]) -> str:
    """One C{name value unit} line per sensor (C{room 21.5 C}); errors after a C{#}."""
    lines = []
    for document in documents:
        line = f"{document['name']} {_format_value(document['value'])}"
        if document["unit"]:
            line += " " + document["unit"]
        if document["error"] is not None:
            line += " # " + " ".join(document["error"].split())
        lines.append(line + "\n")
    return "".join(lines)


def _read_sensor_body(request: Request, url_name: str | None = None) -> FileSensor | bytes:
    """The parsed sensor in a POST/PUT body, or the error body to answer with."""
    if not is_json_content_type(request.getHeader(b"content-type")):
        return json_error(request, 415, "the body must be sent with Content-Type: application/json")
    assert request.content is not None  # the channel gives every request a body first
    try:
        document = decode_json_object(request.content.read(), example=_EXAMPLE)
    except ValueError as e:
        return json_error(request, 400, str(e))
    try:
        return parse_file_sensor(document, url_name)
    except InvalidSensor as e:
        return json_error(request, 400, str(e))


def _answer_later(request: Request, result: Deferred[bytes]) -> int:
    """Finish C{request} with the body C{result} fires with, unless the client left."""
    gone: list[bool] = []
    request.notifyFinish().addErrback(lambda _: gone.append(True))

    def failed(reason: Failure) -> bytes:
        if isinstance(reason.value, SensorError):
            return json_error(request, reason.value.code, reason.value.message)
        _log.failure("Unexpected error changing sensors", failure=reason)
        return json_error(request, 500, "internal server error")

    def write(body: bytes) -> None:
        if not gone:
            request.write(body)
            request.finish()

    result.addErrback(failed).addCallback(write)
    result.addErrback(lambda f: _log.failure("Could not answer", failure=f))
    return NOT_DONE_YET


def _get(request: Request, documents: list[JSONObject], payload: JSONValue) -> bytes:
    request.setHeader(b"vary", b"Accept")
    request.setHeader(b"cache-control", b"no-store")
    if preferred(request.getHeader(b"accept"), _OFFERS) == "text/plain":
        return text_body(request, as_text(documents))
    return json_body(request, payload)


class SensorsResource(JSONResource):
    """C{/api/sensors}: GET lists every sensor, POST creates one."""

    allowedMethods = (b"GET", b"HEAD", b"POST")

    def __init__(self, service: SensorsService, guard: MutationGuard) -> None:
        super().__init__()
        self._service = service
        self._guard = guard

    def getChild(self, path: bytes, request: Request) -> IResource:
        if path == b"":
            return self
        return SensorResource(self._service, self._guard, path)

    def render_GET(self, request: Request) -> bytes:
        documents = self._service.represent_all()
        return _get(request, documents, {"sensors": documents})

    def render_POST(self, request: Request) -> bytes | int:
        refused = self._guard.refuse(request)
        if refused is not None:
            return refused
        sensor = _read_sensor_body(request)
        if isinstance(sensor, bytes):
            return sensor
        try:
            d = self._service.create(sensor, by=client_label(request))
        except InvalidSensor as e:
            return json_error(request, 400, str(e))

        def created(document: JSONObject) -> bytes:
            request.setHeader(b"location", b"/api/sensors/" + sensor.name.encode("ascii"))
            return json_body(request, document, 201)

        return _answer_later(request, d.addCallback(created))


class SensorResource(JSONResource):
    """C{/api/sensors/NAME}: GET one sensor, PUT creates or replaces it, DELETE removes it."""

    isLeaf = True
    allowedMethods = (b"GET", b"HEAD", b"PUT", b"DELETE")

    def __init__(self, service: SensorsService, guard: MutationGuard, segment: bytes) -> None:
        super().__init__()
        self._service = service
        self._guard = guard
        self._segment = segment

    def _name(self) -> str | None:
        """The sensor name in the URL, or None when it cannot be one."""
        try:
            return check_name(self._segment.decode("ascii"))
        except (UnicodeDecodeError, InvalidSensor):
            return None

    def _not_found(self, request: Request) -> bytes:
        shown = self._segment.decode("ascii", "replace")
        return json_error(request, 404, f"no sensor named {shown!r}")

    def render_GET(self, request: Request) -> bytes:
        name = self._name()
        document = self._service.represent(name) if name is not None else None
        if document is None:
            return self._not_found(request)
        return _get(request, [document], document)

    def render_PUT(self, request: Request) -> bytes | int:
        refused = self._guard.refuse(request)
        if refused is not None:
            return refused
        name = self._name()
        if name is None:
            shown = self._segment.decode("ascii", "replace")
            return json_error(request, 400, f"invalid sensor name {shown!r} in the URL")
        sensor = _read_sensor_body(request, name)
        if isinstance(sensor, bytes):
            return sensor
        try:
            d = self._service.replace(sensor, by=client_label(request))
        except InvalidSensor as e:
            return json_error(request, 400, str(e))

        def replaced(outcome: tuple[bool, JSONObject]) -> bytes:
            created, document = outcome
            if created:
                request.setHeader(b"location", b"/api/sensors/" + name.encode("ascii"))
            return json_body(request, document, 201 if created else 200)

        return _answer_later(request, d.addCallback(replaced))

    def render_DELETE(self, request: Request) -> bytes | int:
        refused = self._guard.refuse(request)
        if refused is not None:
            return refused
        name = self._name()
        if name is None:
            return self._not_found(request)
        d = self._service.delete(name, by=client_label(request))

        def deleted(_: None) -> bytes:
            request.setResponseCode(204)
            return b""

        return _answer_later(request, d.addCallback(deleted))
