"""The connection's own answers: line limits, the read deadline, parser errors,
Host and target checks, Expect and cross-site changes; through a real HTTPChannel."""

from __future__ import annotations

import json

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from pistatsd.web.hosts import HostPolicy, HostRules
from pistatsd.web.site import PistatsdSite
from pistatsd.ws.origins import OriginPolicy
from tests.support import Client, Response, build_request, request


class Show(Resource):
    """Answers with what the resource tree saw: path, Host and body."""

    isLeaf = True

    def render(self, request):
        return json.dumps(
            {
                "path": request.path.decode(),
                "args": {k.decode(): v[0].decode() for k, v in request.args.items()},
                "host": (request.getHeader(b"host") or b"").decode(),
                "body": request.content.read().decode(),
            }
        ).encode()


def make_site(clock: Clock | None = None, **kw) -> PistatsdSite:
    root = Resource()
    root.putChild(b"show", Show())
    root.putChild(b"", Show())
    hosts = HostPolicy(HostRules.from_config(["pi.example"], ()), clock=clock or Clock())
    kw.setdefault("hosts", hosts)
    return PistatsdSite(root, reactor=clock or Clock(), **kw)


def raw(site: PistatsdSite, data: bytes) -> Response:
    """Send C{data} on a fresh connection; the single response."""
    client = Client(site)
    client.send(data)
    [response] = client.responses()
    return response


class LineLimitTests(SynchronousTestCase):
    def test_request_line_over_16k_is_414(self) -> None:
        site = make_site()
        # Without its end: answered as soon as it is too long, not when it ends.
        response = raw(site, b"GET /show?" + b"a" * 17000)
        self.assertEqual(response.status, 414)
        self.assertIn("16384", json.loads(response.body)["error"])

    def test_long_query_is_414(self) -> None:
        target = "/show?q=" + "x" * 16400
        response = raw(make_site(), build_request("GET", target))
        self.assertEqual(response.status, 414)

    def test_long_request_line_within_the_limit_is_served(self) -> None:
        target = "/show?q=" + "x" * 16000
        response = raw(make_site(), build_request("GET", target))
        self.assertEqual(response.status, 200)

    def test_header_line_over_16k_is_431(self) -> None:
        response = raw(make_site(), build_request("GET", "/show", {"X-Big": "b" * 16500}))
        self.assertEqual(response.status, 431)

    def test_too_many_headers_is_431(self) -> None:
        headers = {f"X-{i}": "v" for i in range(100)}
        response = raw(make_site(), build_request("GET", "/show", headers))
        self.assertEqual(response.status, 431)
        self.assertIn("100", json.loads(response.body)["error"])

    def test_headers_over_32k_in_all_are_431(self) -> None:
        headers = {f"X-{i}": "v" * 15000 for i in range(3)}
        response = raw(make_site(), build_request("GET", "/show", headers))
        self.assertEqual(response.status, 431)

    def test_many_headers_within_the_limits_are_served(self) -> None:
        headers = {f"X-{i}": "v" * 300 for i in range(90)}
        self.assertEqual(raw(make_site(), build_request("GET", "/show", headers)).status, 200)


class DeadlineTests(SynchronousTestCase):
    """Reading one request has 60 s in all, however slowly it trickles in."""

    def test_trickled_headers_get_408_at_the_deadline(self) -> None:
        clock = Clock()
        site = make_site(clock)
        client = Client(site)
        client.send(b"GET /show HTTP/1.1\r\n")
        for i in range(3):
            clock.advance(15)
            client.send(b"X-%d: v\r\n" % i)  # each line resets the idle timeout
        self.assertEqual(client.transport.value(), b"")
        clock.advance(15)
        [response] = client.responses()
        self.assertEqual(response.status, 408)
        self.assertTrue(client.channel.answered_early)

    def test_a_trickled_body_gets_408_too(self) -> None:
        clock = Clock()
        client = Client(make_site(clock))
        client.send(build_request("POST", "/show", {"Content-Length": "10"}))
        for _ in range(6):
            clock.advance(11)
            client.send(b"x")
        self.assertEqual(client.responses()[0].status, 408)

    def test_deadline_is_a_constructor_parameter(self) -> None:
        clock = Clock()
        client = Client(make_site(clock, request_deadline=5))
        client.send(b"GET /")
        clock.advance(4.9)
        self.assertEqual(client.transport.value(), b"")
        clock.advance(0.2)
        self.assertEqual(client.responses()[0].status, 408)

    def test_each_request_has_its_own_deadline(self) -> None:
        clock = Clock()
        client = Client(make_site(clock, idle_timeout=300))
        client.send(build_request("GET", "/show"))
        clock.advance(50)
        client.send(build_request("GET", "/show"))
        clock.advance(50)
        client.send(b"GET /show HTTP/1.1\r\n")
        clock.advance(59)
        self.assertEqual([r.status for r in client.responses()], [200, 200])
        clock.advance(2)
        self.assertEqual([r.status for r in client.responses()], [200, 200, 408])

    def test_waiting_between_requests_is_the_idle_timeout(self) -> None:
        clock = Clock()
        client = Client(make_site(clock, idle_timeout=300))
        client.send(build_request("GET", "/show"))
        clock.advance(200)
        self.assertEqual(len(client.responses()), 1)
        self.assertFalse(client.transport.disconnecting)


class ParserTests(SynchronousTestCase):
    def assertRefused(self, data: bytes, status: int = 400) -> dict:
        response = raw(make_site(), data)
        self.assertEqual(response.status, status, data[:80])
        self.assertEqual(response.header("content-type"), "application/json")
        return json.loads(response.body)

    def test_malformed_request_line(self) -> None:
        self.assertRefused(b"GET  /show HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        self.assertRefused(b"GET /show\r\n\r\n")

    def test_other_http_versions_are_505(self) -> None:
        self.assertRefused(b"GET /show HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n", 505)
        self.assertRefused(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505)

    def test_bare_lf_is_refused_at_once(self) -> None:
        error = self.assertRefused(b"GET /show HTTP/1.0\n\n")
        self.assertIn("CRLF", error["error"])
        self.assertRefused(b"GET /show HTTP/1.1\r\nHost: 127.0.0.1\nX: y\r\n\r\n")

    def test_cr_without_lf(self) -> None:
        self.assertRefused(b"GET /show HTTP/1.1\rHost: 127.0.0.1\r\n\r\n")
        self.assertRefused(b"GET /show HTTP/1.1\r\nHost: 127.0.0.1\r\nX: a\rb\r\n\r\n")

    def test_header_names_with_spaces(self) -> None:
        self.assertRefused(b"GET /show HTTP/1.1\r\nHost : 127.0.0.1\r\n\r\n")
        self.assertRefused(b"GET /show HTTP/1.1\r\nHost: 127.0.0.1\r\nX Y: z\r\n\r\n")

    def test_transfer_encoding_with_content_length(self) -> None:
        for headers in (
            {"Content-Length": "3", "Transfer-Encoding": "chunked"},
            {"Transfer-Encoding": "chunked", "Content-Length": "3"},
        ):
            data = build_request("POST", "/show", headers) + b"3\r\nabc\r\n0\r\n\r\n"
            self.assertRefused(data)

    def test_bad_content_lengths(self) -> None:
        for value in ("-1", "+3", "3, 3", "0x3"):
            self.assertRefused(build_request("POST", "/show", {"Content-Length": value}))
        data = b"POST /show HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n"
        self.assertRefused(data + b"Content-Length: 3\r\n\r\nabc")

    def test_unknown_transfer_encoding(self) -> None:
        self.assertRefused(build_request("POST", "/show", {"Transfer-Encoding": "gzip, chunked"}))


class HostHeaderTests(SynchronousTestCase):
    def test_http11_without_host_is_400(self) -> None:
        response = raw(make_site(), b"GET /show HTTP/1.1\r\n\r\n")
        self.assertEqual(response.status, 400)
        self.assertIn("Host", json.loads(response.body)["error"])

    def test_http10_without_host_is_served(self) -> None:
        client = Client(make_site())
        client.send(b"GET /show HTTP/1.0\r\n\r\n")
        [response] = client.responses()
        self.assertEqual(response.status, 200)

    def test_two_host_headers_are_400(self) -> None:
        data = b"GET /show HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: pi.example\r\n\r\n"
        self.assertEqual(raw(make_site(), data).status, 400)
        data = b"GET /show HTTP/1.0\r\nHost: 127.0.0.1\r\nHost: 127.0.0.1\r\n\r\n"
        self.assertEqual(raw(make_site(), data).status, 400)

    def test_unknown_host_is_421_before_the_body(self) -> None:
        client = Client(make_site())
        client.send(
            b"POST /show HTTP/1.1\r\nHost: rebind.example:8888\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        [response] = client.responses()
        self.assertEqual(response.status, 421)
        self.assertEqual(response.header("content-type"), "application/json")
        self.assertNotIn(b"100 Continue", client.transport.value())

    def test_invalid_host_is_400(self) -> None:
        for host in (b"a b", b"a@b", b"[::1", b"x:y", b"", b"a/b"):
            data = b"GET /show HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
            self.assertEqual(raw(make_site(), data).status, 400, host)

    def test_known_hosts_are_served(self) -> None:
        for host in ("127.0.0.1:8888", "LOCALHOST", "[::1]:8888", "pi.example.", "Pi.Example:1"):
            response = request(make_site(), "GET", "/show", {"Host": host})
            self.assertEqual(response.status, 200, host)


class AbsoluteFormTests(SynchronousTestCase):
    def test_routed_like_origin_form(self) -> None:
        response = raw(
            make_site(),
            b"GET http://localhost:8888/show?a=1 HTTP/1.1\r\nHost: localhost:8888\r\n\r\n",
        )
        self.assertEqual(response.status, 200)
        self.assertEqual(json.loads(response.body)["path"], "/show")
        self.assertEqual(json.loads(response.body)["args"], {"a": "1"})

    def test_target_authority_replaces_host(self) -> None:
        data = b"GET HTTP://pi.example/show HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        body = json.loads(raw(make_site(), data).body)
        self.assertEqual(body["host"], "pi.example")

    def test_target_authority_is_checked(self) -> None:
        data = b"GET http://rebind.example/show HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        self.assertEqual(raw(make_site(), data).status, 421)

    def test_empty_path_and_query_only(self) -> None:
        site = make_site()
        data = b"GET http://127.0.0.1:8888 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        self.assertEqual(json.loads(raw(site, data).body)["path"], "/")
        data = b"GET http://127.0.0.1?a=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        shown = json.loads(raw(site, data).body)
        self.assertEqual((shown["path"], shown["args"]), ("/", {"a": "1"}))

    def test_unusable_targets_are_400(self) -> None:
        for target in (b"http://user@127.0.0.1/show", b"http:///show", b"127.0.0.1:8888"):
            data = b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            self.assertEqual(raw(make_site(), data).status, 400, target)
        data = b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n"
        self.assertEqual(raw(make_site(), data).status, 400)


class ExpectTests(SynchronousTestCase):
    def test_unknown_expectation_is_417(self) -> None:
        response = request(make_site(), "POST", "/show", {"Expect": "magic"}, b"abc")
        self.assertEqual(response.status, 417)

    def test_100_continue_is_honoured(self) -> None:
        client = Client(make_site())
        client.send(
            build_request("POST", "/show", {"Content-Length": "3", "Expect": "100-Continue"})
        )
        self.assertIn(b"HTTP/1.1 100 Continue", client.transport.value())
        client.send(b"abc")
        self.assertEqual(json.loads(client.responses()[-1].body)["body"], "abc")


class CrossSiteChangeTests(SynchronousTestCase):
    """A browser page of another origin cannot POST, PUT or DELETE."""

    def site(self) -> PistatsdSite:
        return make_site(origins=OriginPolicy.from_config(["https://dash.example:*"]))

    def test_other_origins_are_refused_before_the_body(self) -> None:
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            for origin in ("http://evil.example", "null", "http://127.0.0.1:9999", "junk"):
                client = Client(self.site())
                client.send(
                    build_request(method, "/show", {"Origin": origin, "Content-Length": "100"})
                )
                [response] = client.responses()
                self.assertEqual(response.status, 403, (method, origin))
                self.assertIn("origin", json.loads(response.body)["error"])

    def test_same_and_allowed_origins_and_none_are_served(self) -> None:
        for headers in (
            {},
            {"Origin": "http://127.0.0.1:8888"},
            {"Origin": "https://dash.example:4443"},
        ):
            response = request(self.site(), "POST", "/show", headers, b"x")
            self.assertEqual(response.status, 200, headers)

    def test_https_page_behind_a_local_tls_proxy(self) -> None:
        """nginx terminates TLS: an https:// page's change is same-origin, from loopback only."""
        headers = {"Origin": "https://127.0.0.1:8888", "X-Forwarded-Proto": "https"}
        self.assertEqual(request(self.site(), "POST", "/show", headers, b"x").status, 200)
        plain = {"Origin": "https://127.0.0.1:8888"}
        self.assertEqual(request(self.site(), "POST", "/show", plain, b"x").status, 403)
        remote = request(self.site(), "POST", "/show", headers, b"x", peer="192.0.2.9")
        self.assertEqual(remote.status, 403)

    def test_forwarded_host_from_a_local_proxy(self) -> None:
        headers = {
            "Origin": "https://pi.example",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "pi.example",
        }
        self.assertEqual(request(self.site(), "POST", "/show", headers, b"x").status, 200)
        remote = request(self.site(), "POST", "/show", headers, b"x", peer="198.51.100.1")
        self.assertEqual(remote.status, 403)

    def test_reads_are_not_checked_here(self) -> None:
        response = request(self.site(), "GET", "/show", {"Origin": "http://evil.example"})
        self.assertEqual(response.status, 200)

    def test_two_origins_are_refused(self) -> None:
        data = (
            b"POST /show HTTP/1.1\r\nHost: 127.0.0.1:8888\r\nOrigin: http://127.0.0.1:8888\r\n"
            b"Origin: http://evil.example\r\nContent-Length: 0\r\n\r\n"
        )
        self.assertEqual(raw(self.site(), data).status, 403)


class LocalAddressTests(SynchronousTestCase):
    def test_asked_of_the_transport_once_per_connection(self) -> None:
        """Each request knows the local address; the kernel is asked once (getsockname)."""
        client = Client(make_site())
        asked = []
        real = client.transport.getHost

        def get_host():
            asked.append(1)
            return real()

        client.transport.getHost = get_host  # type: ignore[method-assign]
        for _ in range(3):
            client.send(b"GET /show HTTP/1.1\r\nHost: localhost\r\n\r\n")
        responses = client.responses()
        self.assertEqual([r.status for r in responses], [200, 200, 200])
        self.assertEqual(len(asked), 1)

    def test_peer_and_security_asked_once_per_connection(self) -> None:
        """The head checks and each request want the client's address and whether
        the connection is TLS; the transport is asked once, not per request."""
        client = Client(make_site())
        asked: list[str] = []
        real = client.transport.getPeer

        def get_peer():
            asked.append("peer")
            return real()

        client.transport.getPeer = get_peer  # type: ignore[method-assign]
        for _ in range(3):
            client.send(b"POST /show HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")
        responses = client.responses()
        self.assertEqual(len(responses), 3)
        self.assertEqual(asked, ["peer"])
        channel = client.channel
        self.assertIs(channel.getPeer(), channel.getPeer())
        self.assertFalse(channel.isSecure())
