"""The site's request: the body limit of L{LimitedRequest}, and a Date header made once a second.

Twisted's C{Request.process} formats the Date header for every request
(C{time.gmtime} and a handful of string operations: about 2% of the CPU of
a small request on a kept-alive connection).  Its text changes once a
second, so L{HttpDate} keeps the current second's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.python import failure
from twisted.web import resource
from twisted.web.http import datetimeToString, unquote
from twisted.web.server import version

from pistatsd.web.limits import LimitedRequest

if TYPE_CHECKING:
    from pistatsd.web.site import PistatsdSite


class HttpDate:
    """The Date header's text for the wall clock's current second, formatted once per second."""

    def __init__(self, wall: Callable[[], float]) -> None:
        self._wall = wall
        self._second = -1
        self._text = b""

    def __call__(self) -> bytes:
        second = int(self._wall())
        if second != self._second:
            self._second = second
            self._text = datetimeToString(second)
        return self._text


class SiteRequest(LimitedRequest):
    """What the site makes for every request it reads."""

    site: PistatsdSite

    def process(self) -> None:
        """Twisted's C{Request.process}, with the site's Date text for the current second.

        The same steps otherwise: the default headers, C{prepath} and
        C{postpath}, C{*}, the resource and its encoder, rendering, and
        C{processingFailed} for whatever escapes.
        """
        site = self.site = self.channel.site
        self.setHeader(b"Server", version)
        self.setHeader(b"Date", site.http_date())
        self.prepath = []
        self.postpath = list(map(unquote, self.path[1:].split(b"/")))
        if self.path == b"*":
            self._handleStar()
            return
        try:
            target = site.getResourceFor(self)
            if resource._IEncodingResource.providedBy(target):
                encoder = target.getEncoder(self)
                if encoder is not None:
                    self._encoder = encoder
            self.render(target)
        except BaseException:
            self.processingFailed(failure.Failure())
