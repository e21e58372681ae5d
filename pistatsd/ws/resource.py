"""Mounting WebSockets in the resource tree, with the Origin check and connection accounting."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from autobahn.twisted.resource import WebSocketResource
from twisted.web.server import NOT_DONE_YET, Request

from pistatsd.web.forwarded import browser_view
from pistatsd.web.responses import json_error
from pistatsd.ws.origins import OriginPolicy
from pistatsd.ws.protocols import PistatsdFactory

if TYPE_CHECKING:
    from pistatsd.web.channel import GuardedChannel


class UpgradeResource(WebSocketResource):
    """A C{WebSocketResource} that checks the Origin first and hands the connection over cleanly.

    The Origin check needs the request's C{Host} and whether it came over
    TLS, which only the HTTP request knows, so it happens here, before the
    upgrade, as an ordinary (logged, counted) 403.  After the upgrade the
    HTTP channel never hears of its connection again: it is uncounted there
    and counted by the hub instead, and the request is recorded as answered
    (101) for the access counts.
    """

    def __init__(self, factory: PistatsdFactory, origins: OriginPolicy) -> None:
        super().__init__(factory)
        self._origins = origins

    def render(self, request: Request) -> bytes | int:
        host, secure = browser_view(
            request.requestHeaders,
            request.getHeader(b"host"),
            request.isSecure(),
            request.getClientAddress(),
        )
        if not self._origins.allows(request.getHeader(b"origin"), host, secure):
            return json_error(request, 403, "origin not allowed")
        if request.getHeader(b"upgrade") is None:
            request.setHeader(b"upgrade", b"websocket")
            return json_error(request, 426, "this is a WebSocket endpoint: upgrade required")
        channel = cast("GuardedChannel", request.channel)  # the site's channel class
        site = channel.site
        result = super().render(request)
        if result is NOT_DONE_YET and channel.transport is None:
            channel.detach()
            request.code = 101
            site.log(request)
        return result
