"""One exchange with InfluxDB: URLs and credentials, classification, timeouts, TLS trust."""

from __future__ import annotations

import base64
import os

from twisted.internet.error import ConnectionRefusedError, DNSLookupError
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web._newclient import ResponseNeverReceived
from twisted.web.http_headers import Headers
from twisted.web.server import NOT_DONE_YET

from pistatsd.influx.writer import (
    BODY_LIMIT,
    InfluxTarget,
    Outcome,
    PrivateCAPolicy,
    Verdict,
    classify,
    create_database_statement,
    describe_failure,
    error_message,
    parse_retry_after,
    post,
    tls_policy_for_cafile,
)
from tests.influxd import FakeInflux, FakeNetwork, Reply, error, make_pki


class TargetTests(SynchronousTestCase):
    def test_v1(self) -> None:
        target = InfluxTarget.build("http://influx:8086", database="my db", user="u", password="pw")
        self.assertEqual(target.api, "v1")
        self.assertEqual(target.write_url(), "http://influx:8086/write?db=my+db&precision=ms")
        self.assertEqual(target.query_url(), "http://influx:8086/query")
        auth = target.headers("text/plain")["Authorization"][0]
        self.assertEqual(auth, "Basic " + base64.b64encode(b"u:pw").decode())

    def test_v2_when_a_token_is_set(self) -> None:
        target = InfluxTarget.build(
            "https://influx.example/prefix/", token="tok123", org="home", bucket="pi"
        )
        self.assertEqual(target.api, "v2")
        self.assertEqual(
            target.write_url(),
            "https://influx.example/prefix/api/v2/write?org=home&bucket=pi&precision=ms",
        )
        self.assertEqual(target.headers("text/plain")["Authorization"], ["Token tok123"])

    def test_v2_bucket_defaults_to_the_database(self) -> None:
        target = InfluxTarget.build("http://h:8086", token="tok123")
        self.assertEqual(
            target.write_url(), "http://h:8086/api/v2/write?bucket=math_server&precision=ms"
        )

    def test_no_auth_without_user(self) -> None:
        target = InfluxTarget.build("http://h:8086", password="ignored")
        self.assertNotIn("Authorization", target.headers("text/plain"))

    def test_credentials_in_the_url_are_stripped(self) -> None:
        target = InfluxTarget.build("http://alice:hunter22@[::1]:8086/")
        self.assertEqual(target.display_url, "http://[::1]:8086")
        self.assertTrue(target.url_had_credentials)
        self.assertNotIn("hunter22", target.write_url())
        self.assertNotIn("hunter22", repr(target))

    def test_scrub_hides_every_form_of_the_secrets(self) -> None:
        target = InfluxTarget.build("http://h", user="u", password="pw-secret", token=None)
        encoded = base64.b64encode(b"u:pw-secret").decode()
        self.assertEqual(target.scrub(f"x pw-secret y {encoded} z"), "x *** y *** z")
        self.assertNotIn("pw-secret", repr(target))

    def test_create_database_statement_quotes_the_name(self) -> None:
        self.assertEqual(create_database_statement('we"ird\\'), 'CREATE DATABASE "we\\"ird\\\\"')


def headers(**values: str) -> Headers:
    return Headers({k.replace("_", "-").encode(): [v.encode()] for k, v in values.items()})


class ClassifyTests(SynchronousTestCase):
    def test_statuses(self) -> None:
        cases = {
            204: Verdict.DELIVERED,
            200: Verdict.DELIVERED,
            400: Verdict.REJECTED,
            401: Verdict.REJECTED,
            403: Verdict.REJECTED,
            404: Verdict.REJECTED,
            301: Verdict.REJECTED,
            413: Verdict.SPLIT,
            408: Verdict.RETRY,
            429: Verdict.RETRY,
            500: Verdict.RETRY,
            503: Verdict.RETRY,
        }
        for status, verdict in cases.items():
            self.assertEqual(classify(status, b"", Headers(), 0).verdict, verdict, status)

    def test_partial_write_counts_what_influx_dropped(self) -> None:
        body = (
            b'{"error":"partial write: field type conflict: input field \\"v\\" on '
            b'measurement \\"m\\" is type float, already exists as type integer dropped=2"}'
        )
        outcome = classify(400, body, Headers(), 0)
        self.assertEqual(outcome.partially_dropped, 2)
        self.assertIn("field type conflict", outcome.message)

    def test_database_not_found(self) -> None:
        outcome = classify(404, b'{"error":"database not found: \\"x\\""}', Headers(), 0)
        self.assertTrue(outcome.database_not_found)
        self.assertEqual(outcome.message, 'HTTP 404: database not found: "x"')

    def test_retry_after_seconds_and_date(self) -> None:
        self.assertEqual(classify(429, b"", headers(retry_after="30"), 0).retry_after, 30.0)
        self.assertEqual(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0), 10.0)
        self.assertEqual(parse_retry_after("99999999", 0), 3600.0)
        self.assertEqual(parse_retry_after("-5", 0), 0.0)
        self.assertIsNone(parse_retry_after("soon", 0))
        self.assertIsNone(parse_retry_after(None, 0))

    def test_error_messages(self) -> None:
        self.assertEqual(
            error_message(b'{"error": "authorization failed"}'), "authorization failed"
        )
        self.assertEqual(
            error_message(b'{"code":"unauthorized","message":"bad token"}'), "bad token"
        )
        self.assertEqual(error_message(b"", headers(x_influxdb_error="from header")), "from header")
        self.assertEqual(
            error_message(b"<html>\n  Bad   gateway </html>"), "<html> Bad gateway </html>"
        )

    def test_transport_failures_in_few_words(self) -> None:
        from twisted.internet.defer import CancelledError

        self.assertEqual(
            describe_failure(Failure(ConnectionRefusedError()), 10), "connection refused"
        )
        self.assertEqual(describe_failure(Failure(DNSLookupError("x")), 10), "host name not found")
        wrapped = ResponseNeverReceived([Failure(CancelledError())])
        self.assertEqual(describe_failure(Failure(wrapped), 10), "no answer within 10 s")


class PostTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.fake = FakeInflux()
        self.network = FakeNetwork(self.fake)

    def post(self, body: bytes = b"m v=1i 1\n") -> Outcome:
        d = post(self.network, self.clock, "http://influx:8086/write", body, {}, 10.0)
        return d

    def test_timeout_and_reactor_passed_to_treq(self) -> None:
        outcome = self.successResultOf(self.post())
        self.assertEqual(outcome.verdict, Verdict.DELIVERED)
        call = self.network.calls[0]
        self.assertEqual(call["timeout"], 10.0)
        self.assertIs(call["reactor"], self.clock)

    def test_no_answer_is_a_timeout_on_the_injected_clock(self) -> None:
        self.fake.hang = True
        d = self.post()
        self.assertNoResult(d)
        self.clock.advance(10)
        outcome = self.successResultOf(d)
        self.assertEqual(
            (outcome.verdict, outcome.message), (Verdict.RETRY, "no answer within 10 s")
        )

    def test_a_body_that_stalls_is_bounded_too(self) -> None:
        class Stalling(FakeInflux):
            def render_POST(self, request):  # type: ignore[override]
                request.setResponseCode(500)
                request.write(b"partial")  # headers and a first chunk, then nothing
                return NOT_DONE_YET

        self.network = FakeNetwork(Stalling())
        d = self.post()
        self.network.stub.flush()
        self.assertNoResult(d)
        self.clock.advance(10)
        self.assertEqual(self.successResultOf(d).verdict, Verdict.RETRY)

    def test_a_large_error_body_is_read_but_not_kept(self) -> None:
        self.fake.default = Reply(500, b"x" * (BODY_LIMIT * 3))
        outcome = self.successResultOf(self.post())
        self.assertEqual(outcome.verdict, Verdict.RETRY)
        self.assertLessEqual(len(outcome.message), 200)

    def test_refused(self) -> None:
        self.network.refusing = True
        outcome = self.successResultOf(self.post())
        self.assertEqual((outcome.verdict, outcome.message), (Verdict.RETRY, "connection refused"))

    def test_messages_are_scrubbed(self) -> None:
        self.fake.default = error(401, "bad credentials hunter22")
        d = post(
            self.network,
            self.clock,
            "http://h/write",
            b"",
            {},
            10.0,
            lambda t: t.replace("hunter22", "***"),
        )
        self.assertEqual(self.successResultOf(d).message, "HTTP 401: bad credentials ***")


class TrustTests(SynchronousTestCase):
    def write_ca(self, count: int = 2) -> str:
        """A bundle of C{count} CA certificates, with text between the blocks."""
        path = self.mktemp()
        with open(path, "wb") as f:
            for _ in range(count):
                directory = self.mktemp()
                os.makedirs(directory)
                with open(make_pki(directory).ca, "rb") as ca:
                    f.write(b"# a comment between blocks\n" + ca.read())
        return path

    def test_cafile_bundle_is_trusted_for_the_host_name(self) -> None:
        policy = tls_policy_for_cafile(self.write_ca())
        self.assertIsInstance(policy, PrivateCAPolicy)
        options = policy.creatorForNetloc(b"influx.example", 8086)
        self.assertEqual(options._hostname, "influx.example")

    def test_bad_cafiles(self) -> None:
        empty = self.mktemp()
        with open(empty, "w") as f:
            f.write("not a certificate\n")
        self.assertRaises(ValueError, tls_policy_for_cafile, empty)
        broken = self.mktemp()
        with open(broken, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        self.assertRaises(ValueError, tls_policy_for_cafile, broken)
        self.assertRaises(OSError, tls_policy_for_cafile, os.path.join(self.mktemp(), "none.pem"))
