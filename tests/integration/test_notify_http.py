"""Webhook and ntfy notifications over real sockets on 127.0.0.1, on the real reactor.

The notifiers are built by C{notify_parts} from a C{Config}, exactly as the
daemon builds them, and told of alert changes through their C{listener}.
A real C{twisted.web} receiver records what arrives and answers as each test
scripts it: 200, 500, 400, a hang, or not listening at all.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from collections.abc import Generator, Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Protocol
from twisted.logger import LogEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from pistatsd.config import Config
from pistatsd.notify.wiring import NotifyParts, notify_parts
from tests.influxd import rendered
from tests.notify_support import FIRING, eventually, free_port


class Receiver(Resource):
    """Records every POST; answers with the next scripted status (200 when none), or hangs."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.script: list[int | str] = []
        self.received: list[dict[str, Any]] = []
        self.hanging: list[Request] = []

    def render_POST(self, request: Request) -> bytes | int:
        assert request.content is not None
        body = request.content.read()
        step = self.script.pop(0) if self.script else 200
        if step == "hang":
            self.hanging.append(request)
            return NOT_DONE_YET
        assert isinstance(step, int)
        self.received.append(
            {
                "path": request.path.decode(),
                "headers": {
                    k.decode().lower(): v[0].decode()
                    for k, v in request.requestHeaders.getAllRawHeaders()
                },
                "body": body,
                "status": step,
            }
        )
        request.setResponseCode(step)
        return b'{"error":"scripted"}' if step >= 300 else b"{}"

    def delivered(self) -> list[dict[str, Any]]:
        return [r for r in self.received if r["status"] < 300]


class ClosingSite(Site):
    """A quiet Site that can tell when every connection it accepted has closed."""

    noisy = False

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource)
        self.closed: list[Deferred[None]] = []
        self.protocols: list[Protocol] = []

    def log(self, request: Request) -> None:
        """No access log: the receiver's own lines would show the URLs it was sent."""

    def buildProtocol(self, addr: IPv4Address) -> Protocol | None:
        protocol = super().buildProtocol(addr)
        assert protocol is not None
        closed: Deferred[None] = Deferred()
        self.closed.append(closed)
        self.protocols.append(protocol)
        lost = protocol.connectionLost

        def connectionLost(reason: Failure) -> None:
            lost(reason)
            closed.callback(None)

        protocol.connectionLost = connectionLost  # type: ignore[method-assign]
        return protocol


class Bench:
    """A receiver on 127.0.0.1 and notifiers pointed at it; everything closed at the end."""

    def __init__(self, token_file: str) -> None:
        self.receiver = Receiver()
        self.site = ClosingSite(self.receiver)
        self.port: IListeningPort | None = None
        self.port_number = 0
        self.parts: NotifyParts | None = None
        self.token_file = token_file

    def listen(self, port: int = 0) -> int:
        self.port = reactor.listenTCP(port, self.site, interface="127.0.0.1")
        self.port_number = self.port.getHost().port
        return self.port_number

    def notifiers(self, tables: dict[str, dict[str, object]]) -> NotifyParts:
        self.parts = notify_parts(Config(extra={"notify": tables}), reactor)
        for service in self.parts.services:
            service.startService()
        return self.parts

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port_number}{path}"

    def health(self, name: str) -> dict[str, Any]:
        assert self.parts is not None
        notifiers = self.parts.health()["notifiers"]
        assert isinstance(notifiers, dict)
        return notifiers[name]  # type: ignore[no-any-return]

    @pytest_twisted.inlineCallbacks
    def close(self) -> Generator[Deferred[object], object, None]:
        if self.parts is not None:
            yield gatherResults([s.stopService() for s in self.parts.services])
        for request in self.receiver.hanging:
            if request.channel is not None:  # None once the client gave up
                request.channel.transport.abortConnection()
        if self.port is not None:
            yield self.port.stopListening()
        yield gatherResults(self.site.closed)


@pytest.fixture
def bench() -> Iterator[Bench]:
    fd, path = tempfile.mkstemp()
    os.write(fd, b"tk_integrationsecret\n")
    os.close(fd)
    made = Bench(path)
    yield made
    pytest_twisted.blockon(made.close())
    os.unlink(path)


@pytest_twisted.inlineCallbacks
def test_webhook_and_ntfy_formats(bench: Bench) -> Generator[Deferred[object], object, None]:
    bench.listen()
    parts = bench.notifiers(
        {
            "hook": {"webhook": bench.url("/hook")},
            "phone": {"ntfy": bench.url("/my-topic"), "token-file": bench.token_file},
        }
    )
    parts.listener(FIRING)
    # The receiver holds a request before its notifier has read the answer.
    yield eventually(
        lambda: (
            len(bench.receiver.delivered()) == 2
            and bench.health("hook")["sent"] == bench.health("phone")["sent"] == 1
        ),
        10,
        "two requests, answered",
    )
    by_path = {r["path"]: r for r in bench.receiver.delivered()}
    hook, phone = by_path["/hook"], by_path["/my-topic"]
    assert hook["headers"]["content-type"] == "application/json"
    document = json.loads(hook["body"])
    assert document == {
        "alert": "filesystem-full:/boot",
        "state": "firing",
        "event": "firing",
        "severity": "critical",
        "series": "filesystems./boot.percent",
        "value": 93.1,
        "since": "2025-12-01T12:01:00Z",
        "host": socket.gethostname(),
        "message": "filesystem-full:/boot is firing: filesystems./boot.percent = 93.1"
        " (since 12:01 UTC)",
    }
    assert phone["body"].decode() == document["message"]
    assert phone["headers"]["title"] == (
        f"[critical] filesystem-full:/boot firing on {socket.gethostname()}"
    )
    assert phone["headers"]["priority"] == "5"
    assert phone["headers"]["tags"] == "critical,rotating_light"
    assert phone["headers"]["authorization"] == "Bearer tk_integrationsecret"
    assert "authorization" not in hook["headers"]
    assert bench.health("hook")["sent"] == bench.health("phone")["sent"] == 1

    said = yield parts.send_test()
    assert said == {"hook": "sent", "phone": "sent"}
    assert len(bench.receiver.delivered()) == 4


@pytest_twisted.inlineCallbacks
def test_a_receiver_that_is_down_then_comes_up(
    bench: Bench,
) -> Generator[Deferred[object], object, None]:
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    try:
        bench.port_number = free_port()
        parts = bench.notifiers(
            {"phone": {"ntfy": bench.url("/topic-secret-xyz"), "token-file": bench.token_file}}
        )
        parts.listener(FIRING)
        yield eventually(lambda: bench.health("phone")["retrying"], 10, "a failed attempt")
        assert bench.health("phone")["last_error"] == "connection refused"
        bench.listen(bench.port_number)
        # The receiver holds the message before the notifier has read its answer.
        yield eventually(
            lambda: bench.receiver.delivered() and bench.health("phone")["sent"],
            15,
            "the retried message, answered",
        )
    finally:
        globalLogPublisher.removeObserver(events.append)
    state = bench.health("phone")
    assert (state["sent"], state["dropped"], state["queued"]) == (1, 0, 0)
    assert state["failed"] >= 1
    assert state["target"] == f"http://127.0.0.1:{bench.port_number}/***"
    text = rendered(events)
    failing = [e for e in events if "cannot deliver" in e.get("log_format", "")]
    assert len(failing) == 1, text
    assert "delivering again" in text, text
    for secret in ("topic-secret-xyz", "tk_integrationsecret"):
        assert secret not in text
        assert secret not in repr(parts.health())


@pytest_twisted.inlineCallbacks
def test_a_receiver_that_hangs_is_timed_out_and_retried(
    bench: Bench,
) -> Generator[Deferred[object], object, None]:
    bench.listen()
    bench.receiver.script = ["hang"]
    parts = bench.notifiers({"hook": {"webhook": bench.url("/hook")}})
    started = reactor.seconds()
    parts.listener(FIRING)
    yield eventually(lambda: bench.health("hook")["failed"] == 1, 20, "the timeout")
    assert reactor.seconds() - started >= 9.5, "the HTTP timeout is 10 s"
    assert bench.health("hook")["last_error"] == "no answer within 10 s"
    yield eventually(lambda: bench.health("hook")["sent"] == 1, 15, "the retried message")
    assert bench.receiver.delivered()


@pytest_twisted.inlineCallbacks
def test_500_is_retried_and_400_dropped(bench: Bench) -> Generator[Deferred[object], object, None]:
    bench.listen()
    bench.receiver.script = [500]
    parts = bench.notifiers({"hook": {"webhook": bench.url("/hook")}})
    parts.listener(FIRING)
    yield eventually(lambda: bench.health("hook")["sent"] == 1, 15, "the retried message")
    assert len(bench.receiver.delivered()) == 1
    state = bench.health("hook")
    assert (state["sent"], state["failed"], state["dropped"]) == (1, 1, 0)
    assert state["last_error"] == "HTTP 500: scripted"

    bench.receiver.script = [400]
    parts.listener(FIRING)
    yield eventually(lambda: bench.health("hook")["dropped"] == 1, 10, "the drop")
    state = bench.health("hook")
    assert (state["sent"], state["failed"], state["retrying"], state["queued"]) == (1, 2, False, 0)
    assert state["last_error"] == "HTTP 400: scripted"
    assert [r["status"] for r in bench.receiver.received] == [500, 200, 400]
