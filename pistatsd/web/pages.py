"""Small text and HTML pages: C{/alive} and the dynamic C{*.zzz} page."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from urllib.parse import unquote

from twisted.web.resource import Resource
from twisted.web.server import Request

from pistatsd.web.responses import HTML_TYPE, TEXT_TYPE


class AliveResource(Resource):
    """C{GET /alive}: the cheapest possible liveness probe."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", TEXT_TYPE)
        return b"Alive"


class ZzzPage(Resource):
    """Any C{*.zzz} path: a dynamic page naming the path and today's date.

    The path is the client's text: it is HTML-escaped, never trusted.  The
    date comes from the wall clock C{wall}, not the reactor (whose clock is
    monotonic and knows no date).
    """

    isLeaf = True

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._wall = wall

    def render_GET(self, request: Request) -> bytes:
        now = time.localtime(self._wall())
        path = html.escape(unquote(request.path.decode("latin-1"), errors="replace"))
        request.setHeader(b"content-type", HTML_TYPE)
        return (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>pistatsd</title></head>'
            f"<body><p>You requested {path} on day {now.tm_yday} in {now.tm_year}</p>"
            "</body></html>\n"
        ).encode()
