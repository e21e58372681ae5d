"""Webhook and ntfy requests, in memory (StubTreq): what is sent, and what answers mean."""

from __future__ import annotations

import base64
import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import Request

from pistatsd.notify.delivery import Verdict
from pistatsd.notify.http import HTTPSender, classify
from pistatsd.notify.messages import Message
from pistatsd.notify.redact import Scrubber, redact_url, url_secrets
from pistatsd.notify.settings import NotifierSettings

FIRED = Message(
    event="firing",
    alert="hot",
    series="temperature.celsius",
    severity="critical",
    value=81.5,
    since=0.0,
    host="pi",
)


class Receiver(Resource):
    """Records each request; answers with C{status} and C{body}."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[bytes, Headers, bytes]] = []
        self.status = 200
        self.body = b"{}"
        self.headers: dict[bytes, bytes] = {}

    def render_POST(self, request: Request) -> bytes:
        assert request.content is not None
        self.requests.append((request.uri, request.requestHeaders, request.content.read()))
        request.setResponseCode(self.status)
        for name, value in self.headers.items():
            request.setHeader(name, value)
        return self.body


class Refusing:
    def request(self, method: str, url: str, **kwargs: Any) -> Deferred[Any]:
        return fail(ConnectionRefusedError("Connection refused"))


class Recording:
    """StubTreq, and the keyword arguments of each request."""

    def __init__(self, receiver: Receiver) -> None:
        self.stub = StubTreq(receiver)
        self.calls: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Deferred[Any]:
        self.calls.append(kwargs)
        return self.stub.request(method, url, **kwargs)


def sender(settings: NotifierSettings, http: object, clock: Clock | None = None) -> HTTPSender:
    scrub = Scrubber([settings.token, *url_secrets(settings.target)])
    return HTTPSender(settings, clock or Clock(), lambda: 0.0, scrub, http=http)  # type: ignore[arg-type]


def header(headers: Headers, name: str) -> str | None:
    values = headers.getRawHeaders(name)
    return values[0] if values else None


class RequestTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.receiver = Receiver()
        self.http = Recording(self.receiver)

    def test_webhook(self) -> None:
        settings = NotifierSettings(name="h", kind="webhook", target="https://hooks.example/in/abc")
        outcome = self.successResultOf(sender(settings, self.http).send(FIRED))
        self.assertEqual(outcome.verdict, Verdict.SENT)
        ((uri, headers, body),) = self.receiver.requests
        self.assertEqual(uri, b"/in/abc")
        self.assertEqual(header(headers, "content-type"), "application/json")
        self.assertIsNone(header(headers, "authorization"))
        document = json.loads(body)
        self.assertEqual(
            (document["alert"], document["state"], document["value"]), ("hot", "firing", 81.5)
        )

    def test_ntfy_with_a_token(self) -> None:
        settings = NotifierSettings(
            name="p", kind="ntfy", target="https://ntfy.example/my-pi", token="tk_abcdef"
        )
        self.successResultOf(sender(settings, self.http).send(FIRED))
        ((uri, headers, body),) = self.receiver.requests
        self.assertEqual(uri, b"/my-pi")
        self.assertEqual(body.decode(), FIRED.text)
        self.assertEqual(header(headers, "title"), FIRED.title)
        self.assertEqual(header(headers, "priority"), "5")
        self.assertEqual(header(headers, "tags"), "critical,rotating_light")
        self.assertEqual(header(headers, "authorization"), "Bearer tk_abcdef")
        self.assertEqual(header(headers, "content-type"), "text/plain; charset=utf-8")

    def test_credentials_in_the_url_become_basic_auth(self) -> None:
        settings = NotifierSettings(
            name="p", kind="ntfy", target="https://pi:pa%40ss@ntfy.example/alerts"
        )
        self.successResultOf(sender(settings, self.http).send(FIRED))
        ((uri, headers, _),) = self.receiver.requests
        self.assertEqual(uri, b"/alerts")
        expected = "Basic " + base64.b64encode(b"pi:pa@ss").decode()
        self.assertEqual(header(headers, "authorization"), expected)
        scrub = Scrubber(url_secrets(settings.target))
        self.assertEqual(scrub(f"sent {expected}"), "sent Basic ***")

    def test_timeout_and_clock_are_explicit(self) -> None:
        clock = Clock()
        settings = NotifierSettings(name="h", kind="webhook", target="https://hooks.example/x")
        self.successResultOf(sender(settings, self.http, clock).send(FIRED))
        (call,) = self.http.calls
        self.assertEqual((call["timeout"], call["reactor"]), (10.0, clock))
        self.assertFalse(call["allow_redirects"])

    def test_answers(self) -> None:
        settings = NotifierSettings(name="h", kind="webhook", target="https://hooks.example/x")
        expected = {
            200: Verdict.SENT,
            204: Verdict.SENT,
            301: Verdict.DROP,
            400: Verdict.DROP,
            401: Verdict.DROP,
            404: Verdict.DROP,
            408: Verdict.RETRY,
            429: Verdict.RETRY,
            500: Verdict.RETRY,
            503: Verdict.RETRY,
        }
        for status, verdict in expected.items():
            self.receiver.status = status
            outcome = self.successResultOf(sender(settings, self.http).send(FIRED))
            self.assertEqual(outcome.verdict, verdict, status)

    def test_retry_after(self) -> None:
        outcome = classify(429, b"", Headers({"Retry-After": ["30"]}), 0.0)
        self.assertEqual((outcome.verdict, outcome.retry_after), (Verdict.RETRY, 30.0))

    def test_error_text_from_ntfy_without_the_topic(self) -> None:
        self.receiver.status = 403
        self.receiver.body = b'{"code":40301,"http":403,"error":"forbidden: topic my-secret-topic"}'
        settings = NotifierSettings(name="p", kind="ntfy", target="https://ntfy.sh/my-secret-topic")
        outcome = self.successResultOf(sender(settings, self.http).send(FIRED))
        self.assertEqual(outcome.verdict, Verdict.DROP)
        self.assertEqual(outcome.detail, "HTTP 403: forbidden: topic ***")

    def test_connection_refused_is_retried(self) -> None:
        settings = NotifierSettings(name="h", kind="webhook", target="https://hooks.example/x")
        outcome = self.successResultOf(sender(settings, Refusing()).send(FIRED))
        self.assertEqual((outcome.verdict, outcome.detail), (Verdict.RETRY, "connection refused"))


class RedactionTests(SynchronousTestCase):
    def test_urls(self) -> None:
        self.assertEqual(redact_url("https://ntfy.sh/my-topic"), "https://ntfy.sh/***")
        self.assertEqual(
            redact_url("https://u:pw@h.example:8443/x?k=v"), "https://h.example:8443/***"
        )
        self.assertEqual(redact_url("http://127.0.0.1:9000"), "http://127.0.0.1:9000/")
        self.assertEqual(redact_url("http://[::1]:80/"), "http://[::1]:80/")

    def test_url_secrets(self) -> None:
        secrets = url_secrets("https://u:pw123@h/hooks/T0123456/B98765?key=k-secret")
        scrub = Scrubber(secrets)
        self.assertEqual(scrub("at /hooks/T0123456/B98765 with k-secret"), "at /*** with ***")
        self.assertEqual(scrub("B98765 alone"), "*** alone")
        self.assertEqual(scrub("user u, pw123"), "user u, ***")
