"""The site's limits: body size, connection cap, idle timeout, errors and access log."""

from __future__ import annotations

import json

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from pistatsd.web.site import PistatsdSite
from tests.support import Client, build_request, parse_responses, request


class Echo(Resource):
    """Answers with the length of the body it received."""

    isLeaf = True

    def render_POST(self, request):
        return b"%d" % len(request.content.read())


class Boom(Resource):
    isLeaf = True

    def render_GET(self, request):
        raise RuntimeError("secret internal detail")


def make_site(**kw) -> PistatsdSite:
    root = Resource()
    root.putChild(b"echo", Echo())
    root.putChild(b"boom", Boom())
    kw.setdefault("reactor", Clock())
    return PistatsdSite(root, **kw)


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
        self.assertTrue(client.transport.disconnecting)
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

    def test_request_observers(self) -> None:
        site = make_site()
        seen = []
        site.request_observers.append(lambda r: seen.append((r.method, r.code)))
        request(site, "POST", "/echo", body=b"x")
        request(site, "GET", "/nothing-here")
        self.assertEqual(seen, [(b"POST", 200), (b"GET", 404)])
