"""One way to answer: JSON bodies, JSON errors and text errors, with explicit content types."""

from __future__ import annotations

import json

from twisted.web.resource import Resource, UnsupportedMethod
from twisted.web.server import Request

from pistatsd.jsontypes import JSONValue

JSON_TYPE = b"application/json"
TEXT_TYPE = b"text/plain; charset=utf-8"
HTML_TYPE = b"text/html; charset=utf-8"


def json_body(request: Request, payload: JSONValue, code: int = 200) -> bytes:
    """Encode C{payload} as the response body, with its status and content type."""
    if request.code != code:
        request.setResponseCode(code)
    request.setHeader(b"content-type", JSON_TYPE)
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def json_error(request: Request, code: int, message: str) -> bytes:
    """The body of a JSON error answer: C{{"error": message}}."""
    return json_body(request, {"error": message}, code)


def text_body(request: Request, text: str, code: int = 200) -> bytes:
    """A text/plain answer."""
    if request.code != code:
        request.setResponseCode(code)
    request.setHeader(b"content-type", TEXT_TYPE)
    return text.encode("utf-8")


class JSONResource(Resource):
    """A resource whose errors, 405 included, are JSON like the rest of the API.

    Twisted's own 405 page is HTML; API clients deserve the same shape everywhere.
    A leaf answers only for its own path (and its trailing-slash form), never
    for made-up paths below it.
    """

    def render(self, request: Request) -> bytes | int:
        if self.isLeaf and request.postpath and request.postpath != [b""]:
            return json_error(request, 404, "no such resource: " + request.path.decode("latin-1"))
        try:
            return super().render(request)
        except UnsupportedMethod as e:
            order = [b"GET", b"HEAD", b"POST", b"PUT", b"DELETE"]
            methods: list[bytes] = sorted(
                e.allowedMethods, key=lambda m: order.index(m) if m in order else 99
            )
            request.setHeader(b"allow", b", ".join(methods))
            method = request.method.decode("latin-1", "replace")
            return json_error(request, 405, f"method {method} not allowed")


class JSONNotFound(Resource):
    """A JSON 404 for unknown children of API resources."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        return json_error(request, 404, "no such resource: " + request.path.decode("latin-1"))
