"""The site's request: its Date header, made once a second, and Twisted's processing kept."""

from __future__ import annotations

import gzip

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import EncodingResourceWrapper, Resource
from twisted.web.server import GzipEncoderFactory, version

from pistatsd.web.request import HttpDate
from pistatsd.web.site import PistatsdSite
from tests.support import request


class Text(Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"x" * 200


class Broken(Resource):
    isLeaf = True

    def render_GET(self, request):
        raise RuntimeError("broken")


class HttpDateTests(SynchronousTestCase):
    def test_formats_the_current_second(self) -> None:
        self.assertEqual(HttpDate(lambda: 784111777.6)(), b"Sun, 06 Nov 1994 08:49:37 GMT")

    def test_formats_once_a_second(self) -> None:
        now = [1000.1]
        date = HttpDate(lambda: now[0])
        first = date()
        now[0] = 1000.9
        self.assertIs(date(), first)
        now[0] = 1001.0
        self.assertEqual(date(), b"Thu, 01 Jan 1970 00:16:41 GMT")

    def test_follows_the_wall_clock_back(self) -> None:
        now = [1001.0]
        date = HttpDate(lambda: now[0])
        date()
        now[0] = 1000.0  # a Pi without an RTC, corrected by NTP
        self.assertEqual(date(), b"Thu, 01 Jan 1970 00:16:40 GMT")


def make_site(now: list[float]) -> PistatsdSite:
    root = Resource()
    root.putChild(b"text", Text())
    root.putChild(b"gz", EncodingResourceWrapper(Text(), [GzipEncoderFactory()]))
    root.putChild(b"broken", Broken())
    return PistatsdSite(root, reactor=Clock(), wall=lambda: now[0])


class ProcessTests(SynchronousTestCase):
    def test_date_and_server_headers(self) -> None:
        now = [784111777.0]
        site = make_site(now)
        response = request(site, "GET", "/text")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.header("date"), "Sun, 06 Nov 1994 08:49:37 GMT")
        self.assertEqual(response.header("server"), version.decode())
        now[0] += 1
        self.assertEqual(
            request(site, "GET", "/text").header("date"), "Sun, 06 Nov 1994 08:49:38 GMT"
        )

    def test_an_encoding_resource_still_encodes(self) -> None:
        response = request(make_site([0.0]), "GET", "/gz", {"Accept-Encoding": "gzip"})
        self.assertEqual(response.header("content-encoding"), "gzip")
        self.assertEqual(gzip.decompress(response.body), b"x" * 200)

    def test_escaped_path_segments_are_unquoted(self) -> None:
        response = request(make_site([0.0]), "GET", "/te%78t")
        self.assertEqual((response.status, response.body), (200, b"x" * 200))

    def test_a_failing_resource_is_a_500(self) -> None:
        response = request(make_site([0.0]), "GET", "/broken")
        self.assertEqual(response.status, 500)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
