"""The site's limits: body size, lingering close, connection cap, idle timeout,
errors, request accounting and access log."""

from __future__ import annotations

import json

from twisted.internet.interfaces import ISSLTransport
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import directlyProvides

from pistatsd.web.connections import ConnectionCounter
from pistatsd.web.site import PistatsdSite
from tests.support import (
    Client,
    HalfClosingTransport,
    build_request,
    parse_responses,
    request,
)


class Echo(Resource):
    """Answers with the length of the body it received; counts the requests it saw."""

    isLeaf = True
    rendered = 0

    def render_POST(self, request):
        Echo.rendered += 1
        return b"%d" % len(request.content.read())


class Boom(Resource):
    isLeaf = True

    def render_GET(self, request):
        raise RuntimeError("secret internal detail")


class Slow(Resource):
    """Answers later, when a test finishes the request."""

    isLeaf = True
    pending: list = []

    def render_GET(self, request):
        Slow.pending.append(request)
        return NOT_DONE_YET


class _Root(Resource):
    """The test site's root: unknown paths get Twisted's escaped 404, not the deprecated page."""

    def getChild(self, path: bytes, request: object) -> IResource:
        return notFound()


def make_site(max_connections: int = 1024, **kw) -> PistatsdSite:
    root = _Root()
    root.putChild(b"echo", Echo())
    root.putChild(b"boom", Boom())
    kw.setdefault("reactor", Clock())
    return PistatsdSite(root, connections=ConnectionCounter(max_connections), **kw)


class BodyLimitTests(SynchronousTestCase):
    def test_within_limit(self) -> None:
        response = request(make_site(max_body=10), "POST", "/echo", body=b"x" * 10)
        self.assertEqual((response.status, response.body), (200, b"10"))

    def test_declared_length_refused_before_body(self) -> None:
        site = make_site(max_body=10)
        client = Client(site)
        # Only the head is sent: the refusal must not wait for the body.
        client.send(build_request("POST", "/echo", {"Content-Length": "1000000"}))
        [response] = client.responses()
        self.assertEqual(response.status, 413)
        self.assertEqual(json.loads(response.body), {"error": "request body exceeds 10 bytes"})
        self.assertEqual(response.header("connection"), "close")
        # Not closed at once: the connection lingers so the client reads the 413.
        self.assertFalse(client.transport.disconnecting)
        self.assertTrue(client.channel.answered_early)
        self.assertEqual(site.bodies_refused, 1)

    def test_rest_of_body_is_not_buffered(self) -> None:
        client = Client(make_site(max_body=10))
        client.send(build_request("POST", "/echo", {"Content-Length": "1000000"}))
        request_obj = client.channel.requests[-1]
        client.send(b"y" * 100000)
        self.assertEqual(request_obj.content.read(), b"")

    def test_chunked_body_refused_when_it_crosses_the_limit(self) -> None:
        client = Client(make_site(max_body=10))
        client.send(build_request("POST", "/echo", {"Transfer-Encoding": "chunked"}))
        client.send(b"8\r\nxxxxxxxx\r\n")
        self.assertEqual(client.transport.value(), b"")
        client.send(b"8\r\nxxxxxxxx\r\n")
        [response] = client.responses()
        self.assertEqual(response.status, 413)

    def test_chunked_body_over_the_limit_in_one_write(self) -> None:
        """The whole body, terminal chunk included, arrives with the head: one clean 413,
        no traceback, and the resource never runs."""
        Echo.rendered = 0
        client = Client(make_site(max_body=10))
        body = b"8\r\nxxxxxxxx\r\n" * 10 + b"0\r\n\r\n"
        client.send(build_request("POST", "/echo", {"Transfer-Encoding": "chunked"}) + body)
        [response] = client.responses()
        self.assertEqual(response.status, 413)
        self.assertEqual(Echo.rendered, 0)
        self.assertEqual(self.flushLoggedErrors(), [])
        # A request sent after it is not parsed either.
        client.send(build_request("POST", "/echo", body=b"x"))
        self.assertEqual(len(client.responses()), 1)

    def test_chunk_size_over_the_limit_refused_at_once(self) -> None:
        client = Client(make_site(max_body=10))
        client.send(build_request("POST", "/echo", {"Transfer-Encoding": "chunked"}))
        client.send(b"B\r\n")  # 11 bytes announced: no need to wait for them
        [response] = client.responses()
        self.assertEqual(response.status, 413)

    def test_chunk_sizes_count_what_came_before(self) -> None:
        client = Client(make_site(max_body=10))
        client.send(build_request("POST", "/echo", {"Transfer-Encoding": "chunked"}))
        client.send(b"6\r\nxxxxxx\r\n")
        self.assertEqual(client.transport.value(), b"")
        client.send(b"5\r\n")
        self.assertEqual(client.responses()[0].status, 413)

    def test_25_digit_chunk_size_refused_before_its_line_ends(self) -> None:
        for digits in (b"1" * 25, b"0" * 24 + b"1"):
            client = Client(make_site(max_body=65536))
            client.send(build_request("POST", "/echo", {"Transfer-Encoding": "chunked"}))
            client.send(digits)
            [response] = client.responses()
            self.assertEqual(response.status, 413, digits)

    def test_garbage_chunk_size_is_a_400_at_once(self) -> None:
        for line in (b"zz", b"-5", b"0x5", b" 5", b"5 ;x", b"5\rx", b";x\r\n"):
            client = Client(make_site(max_body=10))
            client.send(build_request("POST", "/echo", {"Transfer-Encoding": "chunked"}))
            client.send(line)
            [response] = client.responses()
            self.assertEqual(response.status, 400, line)
            self.assertIn("error", json.loads(response.body))

    def test_chunked_within_limit(self) -> None:
        client = Client(make_site(max_body=10))
        client.send(build_request("POST", "/echo", {"Transfer-Encoding": "chunked"}))
        client.send(b"5\r\nxxxxx\r\n0\r\n\r\n")
        [response] = client.responses()
        self.assertEqual((response.status, response.body), (200, b"5"))

    def test_no_100_continue_for_refused_body(self) -> None:
        client = Client(make_site(max_body=10))
        client.send(
            build_request("POST", "/echo", {"Content-Length": "100", "Expect": "100-continue"})
        )
        self.assertNotIn(b"100 Continue", client.transport.value())
        self.assertEqual(client.responses()[0].status, 413)

    def test_expect_continue_with_a_small_body(self) -> None:
        client = Client(make_site(max_body=10))
        client.send(
            build_request("POST", "/echo", {"Content-Length": "3", "Expect": "100-continue"})
        )
        self.assertIn(b"100 Continue", client.transport.value())
        client.send(b"abc")
        self.assertEqual(client.responses()[-1].body, b"3")


class LingeringCloseTests(SynchronousTestCase):
    """After an early answer the server stops writing, drains the input for a bounded
    time and amount, then closes: the client reads the answer, not a reset."""

    def refused(self, transport_class=HalfClosingTransport, **kw) -> tuple[Client, Clock]:
        clock = Clock()
        client = Client(
            make_site(reactor=clock, max_body=10, **kw), transport_class=transport_class
        )
        client.send(build_request("POST", "/echo", {"Content-Length": "80000"}) + b"y" * 1000)
        self.assertEqual(client.responses()[0].status, 413)
        return client, clock

    def test_half_closes_and_drains_until_the_time_limit(self) -> None:
        client, clock = self.refused()
        self.assertTrue(client.transport.write_closed)
        client.send(b"y" * 79000)
        clock.advance(4.9)
        self.assertFalse(client.transport.disconnecting)
        clock.advance(0.2)
        self.assertTrue(client.transport.disconnected)  # aborted
        self.assertEqual(len(client.responses()), 1)

    def test_closes_after_a_mebibyte_of_input(self) -> None:
        client, _ = self.refused()
        for _ in range(16):
            client.send(b"y" * 65536)
        self.assertFalse(client.transport.disconnecting)
        client.send(b"y")
        self.assertTrue(client.transport.disconnected)

    def test_peer_closing_ends_the_linger(self) -> None:
        client, clock = self.refused()
        client.close()
        clock.advance(6)
        self.assertFalse(client.transport.disconnected)  # no abort left pending

    def test_transport_without_half_close_still_drains(self) -> None:
        from twisted.internet.testing import StringTransport

        client, clock = self.refused(transport_class=StringTransport)
        client.send(b"y" * 50000)
        self.assertFalse(client.transport.disconnecting)
        clock.advance(5.1)
        self.assertTrue(client.transport.disconnecting)

    def test_tls_is_not_half_closed_under_the_tls_layer(self) -> None:
        class TLSLike(HalfClosingTransport):
            def __init__(self, *a, **kw) -> None:
                super().__init__(*a, **kw)
                directlyProvides(self, ISSLTransport)

            def setTcpNoDelay(self, enabled: bool) -> None:
                pass

        client, clock = self.refused(transport_class=TLSLike)
        self.assertFalse(client.transport.write_closed)
        clock.advance(5.1)
        self.assertTrue(client.transport.disconnecting)

    def test_head_gets_no_error_body(self) -> None:
        client = Client(make_site(), transport_class=HalfClosingTransport)
        client.send(b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: x\r\n\r\n")
        head, _, body = client.transport.value().partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 417 "), head)
        self.assertEqual(body, b"")


class ConnectionCapTests(SynchronousTestCase):
    def test_cap(self) -> None:
        site = make_site(max_connections=2)
        first, second = Client(site), Client(site)
        self.assertEqual(site.open_connections, 2)
        third = Client(site)
        [response] = parse_responses(third.transport.value())
        self.assertEqual(response.status, 503)
        self.assertTrue(third.transport.disconnecting)
        self.assertEqual(site.connections_refused, 1)
        # Connections that were accepted still work.
        first.send(build_request("POST", "/echo", body=b"abc"))
        self.assertEqual(first.responses()[0].body, b"3")
        first.close()
        self.assertEqual(site.open_connections, 1)
        fourth = Client(site)
        self.assertEqual(fourth.transport.value(), b"")
        self.assertEqual(site.open_connections, 2)
        second.close()
        fourth.close()
        self.assertEqual(site.open_connections, 0)


class IdleTimeoutTests(SynchronousTestCase):
    def test_idle_connection_closed(self) -> None:
        clock = Clock()
        site = make_site(reactor=clock, idle_timeout=60)
        client = Client(site)
        clock.advance(59)
        self.assertFalse(client.transport.disconnecting)
        clock.advance(2)
        self.assertTrue(client.transport.disconnecting)

    def test_activity_resets_timeout(self) -> None:
        clock = Clock()
        client = Client(make_site(reactor=clock, idle_timeout=60))
        clock.advance(50)
        client.send(build_request("POST", "/echo", body=b"x"))
        clock.advance(50)
        self.assertFalse(client.transport.disconnecting)
        clock.advance(11)  # 60 s after the response
        self.assertTrue(client.transport.disconnecting)

    def test_requests_make_no_timer_each(self) -> None:
        """A kept-alive connection's requests reuse its one pending idle call."""
        clock = Clock()
        client = Client(make_site(reactor=clock, idle_timeout=60))
        [idle] = clock.getDelayedCalls()
        client.send(build_request("POST", "/echo", body=b"x"))
        calls = clock.getDelayedCalls()  # the idle call and the header deadline's
        self.assertIn(idle, calls)
        self.assertEqual(len(calls), 2)
        for _ in range(5):
            clock.advance(1)
            client.send(build_request("POST", "/echo", body=b"x"))
        self.assertEqual(len(client.responses()), 6)
        self.assertEqual(clock.getDelayedCalls(), calls)
        self.assertTrue(idle.active())

    def test_a_request_being_handled_is_not_timed_out(self) -> None:
        clock = Clock()
        site = make_site(reactor=clock, idle_timeout=60)
        site.resource.putChild(b"slow", Slow())
        client = Client(site)
        client.send(build_request("GET", "/slow"))
        clock.advance(120)  # the idle call fires while the request is open
        self.assertFalse(client.transport.disconnecting)
        Slow.pending.pop().finish()
        self.assertEqual(len(client.responses()), 1)
        clock.advance(59)
        self.assertFalse(client.transport.disconnecting)
        clock.advance(2)  # 60 s after the response, not after the idle call fired
        self.assertTrue(client.transport.disconnecting)

    def test_closing_cancels_the_idle_call(self) -> None:
        clock = Clock()
        client = Client(make_site(reactor=clock, idle_timeout=60))
        client.send(build_request("POST", "/echo", body=b"x"))
        client.close()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_a_shorter_period_takes_effect_at_once(self) -> None:
        clock = Clock()
        client = Client(make_site(reactor=clock, idle_timeout=60))
        client.channel.setTimeout(5)
        clock.advance(6)
        self.assertTrue(client.transport.disconnecting)


class ErrorTests(SynchronousTestCase):
    def test_500_has_no_traceback(self) -> None:
        response = request(make_site(), "GET", "/boom")
        self.assertEqual(response.status, 500)
        self.assertEqual(json.loads(response.body), {"error": "internal server error"})
        self.assertNotIn(b"secret", response.body)
        self.assertNotIn(b"Traceback", response.body)
        [failure] = self.flushLoggedErrors(RuntimeError)
        self.assertIn("secret internal detail", str(failure.value))


class AccessLogTests(SynchronousTestCase):
    def test_off_by_default(self) -> None:
        site = make_site()
        site.startFactory()
        self.addCleanup(site.stopFactory)
        request(site, "POST", "/echo", body=b"x")
        self.assertEqual(site.requests_total, 1)
        self.assertIsNone(site.logPath)

    def test_combined_log_when_configured(self) -> None:
        path = self.mktemp()
        site = make_site(access_log=path)
        site.startFactory()
        request(site, "POST", "/echo?q=1", body=b"x")
        site.stopFactory()
        with open(path) as f:
            line = f.read()
        self.assertIn('"POST /echo?q=1 HTTP/1.1" 200', line)
        self.assertTrue(line.startswith('"127.0.0.1" - - ['), line)

    def test_refused_requests_are_counted(self) -> None:
        """A 413 and a parser 400 reach the observers (which feed InfluxDB and /metrics)."""
        seen = []
        site = make_site(max_body=10, observers=[lambda r: seen.append((r.method, r.path, r.code))])
        request(site, "POST", "/echo", body=b"x" * 11)
        client = Client(site)
        client.send(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n")
        self.assertEqual(client.responses()[0].status, 400)
        Client(site).send(b"x" * 20000)  # a request line too long: 414
        self.assertEqual(
            seen, [(b"POST", b"/echo", 413), (b"GET", b"/stats", 400), (b"-", b"-", 414)]
        )
        self.assertEqual(site.requests_total, 3)

    def test_refused_requests_in_the_access_log(self) -> None:
        path = self.mktemp()
        site = make_site(access_log=path, max_body=10)
        site.startFactory()
        request(site, "POST", "/echo?q=1", body=b"x" * 11)
        site.stopFactory()
        with open(path) as f:
            self.assertIn('"POST /echo?q=1 HTTP/1.1" 413', f.read())

    def test_refusals_are_logged_once_per_episode(self) -> None:
        clock = Clock()
        site = make_site(reactor=clock, max_body=10)
        with capturedLogs() as events:
            for _ in range(5):
                request(site, "POST", "/echo", body=b"x" * 11)
                clock.advance(10)
            Client(site).send(b"bad\r\n")
            clock.advance(61)
        lines = [e["log_format"] for e in events if "efused" in e["log_format"]]
        self.assertEqual(len(lines), 2, lines)
        [summary] = [e for e in events if "more requests" in e["log_format"]]
        self.assertEqual(summary["count"], 5)
        self.assertEqual(summary["by_status"], "1x 400, 4x 413")

    def test_request_observers(self) -> None:
        seen = []
        site = make_site(observers=[lambda r: seen.append((r.method, r.code))])
        request(site, "POST", "/echo", body=b"x")
        request(site, "GET", "/nothing-here")
        self.assertEqual(seen, [(b"POST", 200), (b"GET", 404)])
