"""pistatsd-client: its parts in memory, then the real command line against the real daemon
(and, for TLS, against a small HTTPS + WSS server with certificates made here)."""

from __future__ import annotations

import contextlib
import datetime
import io
import ipaddress
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from treq.testing import StubTreq
from twisted.internet import defer
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    DNSLookupError,
)
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseNeverReceived
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from pistatsd.client import rest
from pistatsd.client.cli import parse_arguments
from pistatsd.client.failures import ClientError, OutputClosed, describe
from pistatsd.client.formatting import format_summary, format_tick
from pistatsd.client.session import _Protocol
from pistatsd.client.tls import Trust
from pistatsd.client.urls import BaseURL
from pistatsd.client.websocket import (
    CLOSE_GRACE,
    HIGH_WATER,
    EchoSession,
    WatchSession,
)
from tests.daemon import PROJECT, Daemon, refused_port

CLIENT = [sys.executable, "-m", "pistatsd.client"]
CONSOLE_SCRIPT = os.path.join(os.path.dirname(sys.executable), "pistatsd-client")
TICK = re.compile(
    r"^\d\d:\d\d:\d\d  cpu +(-|\d+\.\d%)  mem +(-|\d+\.\d%)  temp +(-|-?\d+\.\d°C)"
    r"  load (-|\d+\.\d\d \d+\.\d\d \d+\.\d\d)$"
)


# -- URLs ----------------------------------------------------------------------


class BaseURLTests(SynchronousTestCase):
    def test_http_derives_ws(self) -> None:
        base = BaseURL.parse("http://pi.local:8888")
        self.assertEqual(base.http("/stats"), "http://pi.local:8888/stats")
        self.assertEqual(base.http("/sum"), "http://pi.local:8888/sum")
        self.assertEqual(base.ws("/ws/echo"), "ws://pi.local:8888/ws/echo")
        self.assertEqual(base.ws("/ws/broadcast"), "ws://pi.local:8888/ws/broadcast")
        self.assertFalse(base.secure)

    def test_https_derives_wss(self) -> None:
        base = BaseURL.parse("https://pi.local:8443/")
        self.assertTrue(base.secure)
        self.assertEqual(base.http("/stats"), "https://pi.local:8443/stats")
        self.assertEqual(base.ws("/ws/echo"), "wss://pi.local:8443/ws/echo")

    def test_default_ports_ipv6_and_prefix(self) -> None:
        self.assertEqual(BaseURL.parse("http://pi").port, 80)
        self.assertEqual(BaseURL.parse("https://pi").port, 443)
        ipv6 = BaseURL.parse("http://[::1]:8888")
        self.assertEqual((ipv6.host, ipv6.netloc), ("::1", "[::1]:8888"))
        self.assertEqual(ipv6.ws("/ws/echo"), "ws://[::1]:8888/ws/echo")
        proxied = BaseURL.parse("https://pi.local/pistatsd/")
        self.assertEqual(proxied.ws("/ws/broadcast"), "wss://pi.local:443/pistatsd/ws/broadcast")

    def test_websocket_schemes(self) -> None:
        """What the browser's developer tools show is accepted as it is."""
        plain = BaseURL.parse("ws://pi:8888")
        self.assertEqual(plain, BaseURL(False, "pi", 8888))
        self.assertEqual(plain.http("/stats"), "http://pi:8888/stats")
        secure = BaseURL.parse("wss://pi:8443/")
        self.assertEqual(secure, BaseURL(True, "pi", 8443))
        self.assertEqual(secure.http("/sum"), "https://pi:8443/sum")
        self.assertEqual(BaseURL.parse("ws://pi").port, 80)
        self.assertEqual(BaseURL.parse("WSS://pi").port, 443)

    def test_resource_urls_name_the_daemon(self) -> None:
        cases = {
            "http://pi:8888/stats": BaseURL(False, "pi", 8888),
            "http://pi:8888/stats/": BaseURL(False, "pi", 8888),
            "http://pi:8888/stats/cpu": BaseURL(False, "pi", 8888),
            "http://pi:8888/stats/history": BaseURL(False, "pi", 8888),
            "http://pi:8888/sum": BaseURL(False, "pi", 8888),
            "http://pi:8888/health/": BaseURL(False, "pi", 8888),
            "http://pi:8888/index.html": BaseURL(False, "pi", 8888),
            "http://pi:8888/#range=1h": BaseURL(False, "pi", 8888),
            "ws://pi:8888/ws/broadcast": BaseURL(False, "pi", 8888),
            "ws://pi:8888/ws/broadcast/": BaseURL(False, "pi", 8888),
            "ws://pi:8888/ws/echo": BaseURL(False, "pi", 8888),
            "ws://pi:8888/ws": BaseURL(False, "pi", 8888),
            "wss://pi:8443/ws/echo": BaseURL(True, "pi", 8443),
            "https://host/pistatsd/": BaseURL(True, "host", 443, "/pistatsd"),
            "https://host/pistatsd": BaseURL(True, "host", 443, "/pistatsd"),
            "https://host/pistatsd/stats": BaseURL(True, "host", 443, "/pistatsd"),
            "wss://host/pistatsd/ws/broadcast": BaseURL(True, "host", 443, "/pistatsd"),
            "https://host/a/b/sum/": BaseURL(True, "host", 443, "/a/b"),
            # Only whole segments are resources: these are prefixes.
            "http://pi:8888/news": BaseURL(False, "pi", 8888, "/news"),
            "http://pi:8888/mystats": BaseURL(False, "pi", 8888, "/mystats"),
        }
        for text, expected in cases.items():
            self.assertEqual(BaseURL.parse(text), expected, text)
        base = BaseURL.parse("wss://host/pistatsd/ws/echo")
        self.assertEqual(base.ws("/ws/broadcast"), "wss://host:443/pistatsd/ws/broadcast")
        self.assertEqual(base.http("/stats"), "https://host:443/pistatsd/stats")

    def test_every_command_takes_every_form(self) -> None:
        commands = [["stats"], ["sum", "1"], ["echo"], ["watch"]]
        for command in commands:
            for text in ("ws://pi:8888/ws/broadcast", "http://pi:8888/stats/", "wss://pi:8443"):
                invocation = parse_arguments([command[0], text, *command[1:]])
                self.assertEqual(invocation.base.netloc, text.split("/")[2], (command, text))
                self.assertEqual(invocation.base.prefix, "", (command, text))

    def test_rejects_what_is_not_a_base_url(self) -> None:
        for text in [
            "ftp://pi:21",
            "wsx://pi:8888",
            "pi.local:8888",
            "http://",
            "http://pi:99999",
            "http://pi:port",
            "http://pi:0",
            "http://pi:8888/?interval=1",
            "http://user:secret@pi:8888",
        ]:
            with self.assertRaises(ValueError, msg=text):
                BaseURL.parse(text)


# -- arguments -----------------------------------------------------------------


def _usage_error(argv: list[str]) -> str:
    """Parse C{argv}, expecting a usage error: exit status 2; returns what went to stderr."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as info:
        parse_arguments(argv)
    assert info.value.code == 2, (argv, info.value.code)
    text = stderr.getvalue()
    assert "usage: pistatsd-client" in text, text
    return text


def _pem_certificate() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return _certificate(key, "test", key, "test", ca=True).public_bytes(serialization.Encoding.PEM)


class ArgumentTests(SynchronousTestCase):
    def test_each_command(self) -> None:
        stats = parse_arguments(["stats", "http://127.0.0.1:8888", "--interval", "0.5"])
        self.assertEqual((stats.command, stats.interval, stats.timeout), ("stats", 0.5, 10.0))
        self.assertEqual(stats.base, BaseURL(False, "127.0.0.1", 8888))
        self.assertEqual(stats.trust, Trust())
        total = parse_arguments(["sum", "http://h:1", "1", "-2", "3.5", "--post"])
        self.assertEqual(total.numbers, (1, -2, 3.5))
        self.assertEqual([type(n) for n in total.numbers], [int, int, float])
        self.assertTrue(total.post)
        late = parse_arguments(["sum", "http://h:1", "1", "--post", "-2", "3.5"])
        self.assertEqual((late.numbers, late.post), ((1, -2, 3.5), True))
        self.assertEqual(parse_arguments(["echo", "https://h"]).command, "echo")
        self.assertEqual(parse_arguments(["watch", "http://h:1", "--count", "2"]).count, 2)

    def test_connection_options_before_or_after_the_command(self) -> None:
        before = parse_arguments(["--timeout", "3", "--insecure", "stats", "https://h:1"])
        after = parse_arguments(["stats", "https://h:1", "--timeout", "3", "--insecure"])
        for invocation in (before, after):
            self.assertEqual(invocation.timeout, 3.0)
            self.assertEqual(invocation.trust, Trust(verify=False))

    def test_non_numeric_arguments_are_usage_errors(self) -> None:
        def error(*args: str) -> str:
            return _usage_error(["sum", "http://h:1", *args])

        self.assertIn("'x' is not a number", error("1", "x"))
        self.assertIn("'x' is not a number", error("--post", "1", "x"))
        self.assertIn("not a finite number", error("nan"))
        self.assertIn("not a finite number", error("1e999"))
        self.assertIn("not a finite number", error("9" * 400))
        self.assertIn("not a finite number", error("9" * 5000))
        self.assertIn("not a finite number", error("+Infinity"))
        for python_only in ("1_0", " 1", "\u0663", "0x1"):
            self.assertIn(f"{python_only!r} is not a number", error(python_only))
        self.assertIn("unrecognized arguments: --bogus", error("--bogus"))
        self.assertIn("unrecognized arguments: 1", _usage_error(["stats", "http://h:1", "1"]))

    def test_python_only_syntax_is_not_a_number(self) -> None:
        stats = ["stats", "http://h:1"]
        for text in ("1_0", " 1", "1e0", "\u0663", "-1"):
            _usage_error([*stats, "--interval", text])
            _usage_error(["--timeout", text, *stats])
            _usage_error(["watch", "http://h:1", "--count", text])
        self.assertEqual(parse_arguments([*stats, "--interval", "0.00001"]).interval, 1e-05)
        numbers = parse_arguments(["sum", "http://h:1", "1e3", "+2", ".5"]).numbers
        self.assertEqual(
            (numbers, [type(n) for n in numbers]), ((1000.0, 2, 0.5), [float, int, float])
        )

    def test_other_usage_errors(self) -> None:
        self.assertIn("http://, https://, ws:// or wss://", _usage_error(["stats", "ftp://h"]))
        _usage_error([])
        _usage_error(["stats"])
        _usage_error(["frobnicate", "http://h:1"])
        _usage_error(["--timeout", "0", "stats", "http://h:1"])
        _usage_error(["stats", "http://h:1", "--interval", "-1"])
        _usage_error(["watch", "http://h:1", "--count", "0"])
        self.assertIn(
            "not allowed with", _usage_error(["--cafile", "x", "--insecure", "stats", "http://h:1"])
        )
        self.assertIn(
            "together", _usage_error(["--cafile", "x", "stats", "http://h:1", "--insecure"])
        )

    def test_cafile(self) -> None:
        missing = self.mktemp()
        self.assertIn(
            f"--cafile {missing}", _usage_error(["--cafile", missing, "stats", "https://h"])
        )
        not_pem = self.mktemp()
        Path(not_pem).write_text("hello\n")
        self.assertIn(
            "no PEM certificate", _usage_error(["--cafile", not_pem, "stats", "https://h"])
        )
        good = self.mktemp()
        Path(good).write_bytes(_pem_certificate() + _pem_certificate())
        trust = parse_arguments(["--cafile", good, "stats", "https://h"]).trust
        self.assertIsNotNone(trust.root)
        self.assertTrue(trust.verify)

    def test_argument_names_are_distinct(self) -> None:
        self.assertEqual(rest.argument_names(3), ["a", "b", "c"])
        self.assertEqual(rest.argument_names(28)[24:], ["y", "z", "aa", "ab"])
        self.assertEqual(len(set(rest.argument_names(1000))), 1000)


# -- formatting and failures -----------------------------------------------------

MESSAGE = {
    "type": "stats",
    "sent": 1732240001.5,
    "hostname": "pi",
    "cpu": {"percent": 12.5, "load": [0.1, 0.2, 0.3]},
    "memory": {"percent": 37.2},
    "temperature": {"celsius": 48.3},
    "uptime": {"seconds": 86401.0},
}


class FormattingTests(SynchronousTestCase):
    def test_tick(self) -> None:
        clock = time.strftime("%H:%M:%S", time.localtime(MESSAGE["sent"]))
        self.assertEqual(
            format_tick(MESSAGE),
            f"{clock}  cpu  12.5%  mem 37.2%  temp 48.3°C  load 0.10 0.20 0.30",
        )

    def test_null_temperature_and_warming_cpu(self) -> None:
        message = dict(MESSAGE, temperature={"celsius": None}, cpu={"percent": None, "load": None})
        line = format_tick(message)
        self.assertRegex(line, TICK)
        self.assertIn("temp      -  ", line)
        self.assertIn("cpu      -  ", line)
        self.assertNotIn("°C", line)
        self.assertTrue(line.endswith("load -"))

    def test_missing_everything(self) -> None:
        self.assertEqual(format_tick({}), "--:--:--  cpu      -  mem     -  temp      -  load -")

    def test_summary_is_the_screen(self) -> None:
        """C{--summary} prints the whole-machine screen (tested in tests/test_client_summary.py)."""
        text = format_summary(dict(MESSAGE, sent=None, timestamp=MESSAGE["sent"]))
        lines = text.splitlines()
        self.assertTrue(lines[0].startswith("pi  up 1d 00:00:01  at "), lines)
        self.assertTrue(lines[1].startswith("cpu    12.5%  load 0.10 0.20 0.30"), lines)


class FailureTests(SynchronousTestCase):
    def test_connection_failures(self) -> None:
        self.assertEqual(
            describe(ConnectionRefusedError(), "127.0.0.1:9", 10),
            "cannot connect to 127.0.0.1:9: connection refused",
        )
        self.assertEqual(
            describe(DNSLookupError("nope.invalid"), "nope.invalid:80", 10),
            "cannot connect to nope.invalid:80: host name not found",
        )
        self.assertEqual(
            describe(defer.TimeoutError(), "pi:8888", 2.5),
            "timed out after 2.5 s waiting for pi:8888 (see --timeout)",
        )

    def test_tls_failure_inside_treq_wrapper(self) -> None:
        error = SSL.Error([("SSL routines", "", "certificate verify failed")])
        message = describe(ResponseNeverReceived([Failure(error)]), "pi:8443", 10)
        assert message is not None
        self.assertTrue(message.startswith("TLS handshake with pi:8443 failed: certificate verify"))
        self.assertIn("--cafile", message)

    def test_unexpected_errors_are_not_described(self) -> None:
        self.assertIsNone(describe(ZeroDivisionError(), "pi:8888", 10))
        self.assertEqual(describe(ClientError("as is"), "pi:8888", 10), "as is")

    def test_http_error_message(self) -> None:
        self.assertEqual(
            rest.http_error_message(
                "GET", "http://pi:1/stats", 400, b"Bad Request", b'{"error": "bad interval"}'
            ),
            "GET http://pi:1/stats: HTTP 400 Bad Request: bad interval",
        )
        self.assertEqual(
            rest.http_error_message("POST", "http://pi:1/sum", 413, b"Too Large", b"too big\nx"),
            "POST http://pi:1/sum: HTTP 413 Too Large: too big",
        )


# -- HTTP commands in memory (treq's StubTreq) -------------------------------------


class _Recorder(Resource):
    """Answers every request the same way and remembers what it was asked."""

    isLeaf = True

    def __init__(self, code: int = 200, body: bytes = b"Sum: 6", hang: bool = False) -> None:
        super().__init__()
        self.code, self.body, self.hang = code, body, hang
        self.requests: list[tuple[bytes, dict[bytes, list[bytes]], bytes | None, bytes]] = []

    def render(self, request: Request) -> bytes | int:
        assert request.content is not None
        self.requests.append(
            (
                request.method,
                request.args,
                request.getHeader(b"content-type"),
                request.content.read(),
            )
        )
        if self.hang:
            return NOT_DONE_YET
        request.setResponseCode(self.code)
        return self.body


BASE = BaseURL(False, "127.0.0.1", 8888)


class RestTests(SynchronousTestCase):
    def run_add(self, recorder: _Recorder, *numbers: float, post: bool = False) -> Any:
        lines: list[str] = []
        stub = StubTreq(recorder)
        d = ensureDeferred(rest.add(Clock(), stub, BASE, 5, lines.append, numbers, post))
        stub.flush()
        return d, lines

    def test_sum_get_uses_distinct_argument_names(self) -> None:
        recorder = _Recorder()
        d, lines = self.run_add(recorder, 1, 2, 3.5)
        self.successResultOf(d)
        [(method, args, _, _)] = recorder.requests
        self.assertEqual(method, b"GET")
        self.assertEqual(args, {b"a": [b"1"], b"b": [b"2"], b"c": [b"3.5"]})
        self.assertEqual(lines, ["Sum: 6"])

    def test_stats_interval_is_sent_as_a_plain_decimal(self) -> None:
        recorder = _Recorder(body=b"{}")
        stub = StubTreq(recorder)
        d = ensureDeferred(rest.stats(Clock(), stub, BASE, 5, [].append, 1e-05))
        stub.flush()
        self.successResultOf(d)
        [(_, args, _, _)] = recorder.requests
        self.assertEqual(args, {b"interval": [b"0.00001"]})

    def test_sum_post_sends_a_json_object(self) -> None:
        recorder = _Recorder(body=b"Sum: 6\n")
        d, lines = self.run_add(recorder, 1, 2, 3, post=True)
        self.successResultOf(d)
        [(method, _, content_type, body)] = recorder.requests
        self.assertEqual((method, content_type), (b"POST", b"application/json"))
        self.assertEqual(json.loads(body), {"a": 1, "b": 2, "c": 3})
        self.assertEqual(lines, ["Sum: 6"])

    def test_error_status(self) -> None:
        d, lines = self.run_add(_Recorder(400, b'{"error": "no"}'), 1)
        error = self.failureResultOf(d, ClientError).value
        self.assertEqual(str(error), "GET http://127.0.0.1:8888/sum: HTTP 400 Bad Request: no")
        self.assertEqual(lines, [])

    def test_time_out_covers_the_whole_request(self) -> None:
        clock, stub = Clock(), StubTreq(_Recorder(hang=True))
        d = ensureDeferred(rest.stats(clock, stub, BASE, 2.0, print, interval=0.5))
        stub.flush()
        clock.advance(2.4)
        self.assertNoResult(d)  # the measuring interval is added to the time-out
        clock.advance(0.2)
        failure = self.failureResultOf(d, defer.TimeoutError)
        self.assertIn("timed out after", describe(failure.value, BASE.netloc, 2.5) or "")


# -- WebSocket sessions in memory ------------------------------------------------------


@implementer(IStreamClientEndpoint)
class _PendingEndpoint:
    """An endpoint whose connection attempt never completes (until cancelled)."""

    def __init__(self) -> None:
        self.attempts = 0
        self.cancelled = 0

    def connect(self, factory: Any) -> Deferred[Any]:
        self.attempts += 1
        return Deferred(canceller=self._cancel)

    def _cancel(self, attempt: Deferred[Any]) -> None:
        self.cancelled += 1


class _FakeWebSocket:
    """Stands in for the Autobahn protocol: records what the session sends."""

    transport = None

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.close_codes: list[int | None] = []

    def sendMessage(self, payload: bytes, isBinary: bool = False) -> None:
        self.sent.append(payload)

    def sendClose(self, code: int | None = None, reason: str | None = None) -> None:
        self.close_codes.append(code)


class _FakeStdio(StringTransport):
    """stdin/stdout for C{echo}: C{loseConnection} completes at once, like a flushed pipe."""

    def loseConnection(self) -> None:
        super().loseConnection()
        self.protocol.connectionLost(Failure(ConnectionDone()))


def _json(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


class WatchSessionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.endpoint = _PendingEndpoint()
        self.lines: list[str] = []
        self.warnings: list[str] = []

    def session(self, count: int | None = None) -> WatchSession:
        session = WatchSession(
            self.clock,
            BASE,
            "/ws/broadcast",
            self.endpoint,
            5.0,
            self.warnings.append,
            write=self.lines.append,
            count=count,
        )
        session.start()
        return session

    def test_handshake_time_out(self) -> None:
        session = self.session()
        self.clock.advance(4.9)
        self.assertNoResult(session.result)
        self.clock.advance(0.1)
        error = self.failureResultOf(session.result, ClientError).value
        self.assertEqual(
            str(error),
            "timed out after 5 s waiting for the WebSocket handshake from 127.0.0.1:8888"
            " (see --timeout)",
        )
        self.assertEqual((self.endpoint.attempts, self.endpoint.cancelled), (1, 1))

    def test_count_then_clean_close(self) -> None:
        session, ws = self.session(count=2), _FakeWebSocket()
        session.opened(ws)  # type: ignore[arg-type]
        session.received(_json({"type": "hello", "interval": 0.2, "history": []}), False)
        session.received(_json(MESSAGE), False)
        self.assertEqual(ws.close_codes, [])
        session.received(_json(MESSAGE), False)
        self.assertEqual(ws.close_codes, [1000])
        self.assertEqual(len(self.lines), 2)
        self.assertRegex(self.lines[0], TICK)
        self.assertNoResult(session.result)
        session.closed(True, 1000, None, None)
        self.assertEqual(self.successResultOf(session.result), 0)

    def test_silence_after_the_hello_times_out(self) -> None:
        session = self.session()
        session.opened(_FakeWebSocket())  # type: ignore[arg-type]
        session.received(_json({"type": "hello", "interval": 1.0}), False)
        self.clock.advance(5.9)
        self.assertNoResult(session.result)
        self.clock.advance(0.2)
        error = self.failureResultOf(session.result, ClientError).value
        self.assertIn("waiting for the next broadcast", str(error))

    def test_server_going_away_is_a_normal_end(self) -> None:
        session = self.session()
        session.opened(_FakeWebSocket())  # type: ignore[arg-type]
        session.closed(True, 1001, "going away", None)
        self.assertEqual(self.successResultOf(session.result), 0)
        self.assertEqual(self.warnings, ["the server closed the connection (1001: going away)"])

    def test_connection_lost_is_a_failure(self) -> None:
        session = self.session()
        session.opened(_FakeWebSocket())  # type: ignore[arg-type]
        session.closed(False, 1006, "dropped", Failure(ConnectionLost()))
        error = self.failureResultOf(session.result, ClientError).value
        self.assertEqual(str(error), "the connection to 127.0.0.1:8888 was lost")

    def test_failed_upgrade_is_worded_plainly(self) -> None:
        session = self.session()
        upgrade = "WebSocket connection upgrade failed [403]: Forbidden"
        reason = f'connection was closed uncleanly ("{upgrade}")'
        session.closed(False, 1006, reason, Failure(ConnectionDone()))
        error = self.failureResultOf(session.result, ClientError).value
        self.assertEqual(
            str(error),
            "WebSocket handshake with ws://127.0.0.1:8888/ws/broadcast failed:"
            " WebSocket connection upgrade failed [403]: Forbidden",
        )

    def test_interrupt_closes_cleanly_and_exits_0(self) -> None:
        session, ws = self.session(), _FakeWebSocket()
        session.opened(ws)  # type: ignore[arg-type]
        waiter = session.interrupt()
        assert waiter is not None
        self.assertEqual(ws.close_codes, [1000])
        self.assertNoResult(waiter)
        session.closed(True, 1000, None, None)
        self.assertEqual(self.successResultOf(session.result), 0)
        self.successResultOf(waiter)

    def test_closed_output_stops_like_ctrl_c(self) -> None:
        def closed_output(line: str) -> None:
            raise OutputClosed()

        session, ws = self.session(), _FakeWebSocket()
        session._write = closed_output
        session.opened(ws)  # type: ignore[arg-type]
        session.received(_json(MESSAGE), False)
        self.assertEqual(ws.close_codes, [1000])
        session.closed(True, 1000, None, None)
        self.assertEqual(self.successResultOf(session.result), 0)

    def test_interrupt_does_not_wait_forever_for_the_close(self) -> None:
        session = self.session()
        session.opened(_FakeWebSocket())  # type: ignore[arg-type]
        waiter = session.interrupt()
        self.clock.advance(CLOSE_GRACE)
        self.assertEqual(self.successResultOf(session.result), 0)
        self.successResultOf(waiter)


class ProtocolTests(SynchronousTestCase):
    def test_an_exception_in_the_session_ends_it(self) -> None:
        """Autobahn would only log it and carry on; the client must stop and say so."""

        class Broken(WatchSession):
            def received(self, payload: bytes, is_binary: bool) -> None:
                raise ZeroDivisionError()

        endpoint = _PendingEndpoint()
        session = Broken(Clock(), BASE, "/ws/broadcast", endpoint, 5.0, print, write=print)
        session.start()
        protocol = _Protocol()
        protocol.factory = SimpleNamespace(session=session)
        protocol.onMessage(b"{}", False)
        failure = self.failureResultOf(session.result, ZeroDivisionError)
        self.assertIsNone(describe(failure.value, BASE.netloc, 5.0))  # so: traceback, exit 1


class EchoSessionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.stdio = _FakeStdio()
        self.ws = _FakeWebSocket()
        self.session = EchoSession(
            self.clock,
            BASE,
            "/ws/echo",
            _PendingEndpoint(),
            5.0,
            lambda line: None,
            stdio=self.connect_stdio,
        )
        self.session.start()

    def connect_stdio(self, protocol: Protocol) -> None:
        self.stdio.protocol = protocol
        protocol.makeConnection(self.stdio)

    def test_lines_replies_then_clean_close(self) -> None:
        self.session.opened(self.ws)  # type: ignore[arg-type]
        terminal = self.stdio.protocol
        e_acute = "é".encode()
        terminal.dataReceived(b"one\r\ntwo\nthr" + e_acute[:1])  # split inside a character
        terminal.dataReceived(e_acute[1:] + b"e")
        self.assertEqual(self.ws.sent, [b"one", b"two"])
        terminal.readConnectionLost()  # end of input: the unterminated last line counts
        self.assertEqual(self.ws.sent, [b"one", b"two", "thrée".encode()])
        for payload in self.ws.sent:
            self.assertEqual(self.ws.close_codes, [])
            self.session.received(payload, False)
        self.assertEqual(self.ws.close_codes, [1000])
        self.session.closed(True, 1000, None, None)
        self.assertEqual(self.successResultOf(self.session.result), 0)
        self.assertEqual(self.stdio.value().decode(), "one\ntwo\nthrée\n")

    def test_reply_time_out(self) -> None:
        self.session.opened(self.ws)  # type: ignore[arg-type]
        self.stdio.protocol.dataReceived(b"hello?\n")
        self.clock.advance(5)
        error = self.failureResultOf(self.session.result, ClientError).value
        self.assertIn("timed out after 5 s waiting for an echo reply", str(error))

    def test_stdin_pauses_while_many_replies_are_outstanding(self) -> None:
        self.session.opened(self.ws)  # type: ignore[arg-type]
        self.stdio.protocol.dataReceived(b"x\n" * HIGH_WATER)
        self.assertEqual(self.stdio.producerState, "paused")
        for _ in range(HIGH_WATER - 20):
            self.session.received(b"x", False)
        self.assertEqual(self.stdio.producerState, "paused")
        for _ in range(5):
            self.session.received(b"x", False)
        self.assertEqual(self.stdio.producerState, "producing")

    def test_closed_output_ends_the_session(self) -> None:
        self.session.opened(self.ws)  # type: ignore[arg-type]
        self.stdio.protocol.dataReceived(b"a\n")
        self.stdio.protocol.writeConnectionLost()  # e.g. | head -1 has exited
        self.failureResultOf(self.session.result, OutputClosed)

    def test_server_closing_early_is_a_failure(self) -> None:
        self.session.opened(self.ws)  # type: ignore[arg-type]
        self.stdio.protocol.dataReceived(b"a\n")
        self.session.closed(True, 1009, "message too big", None)
        error = self.failureResultOf(self.session.result, ClientError).value
        self.assertIn("(1009: message too big)", str(error))


# -- the command line against the real daemon ---------------------------------------------


def client(*args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the client to completion."""
    return subprocess.run(
        [*CLIENT, *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        env=dict(os.environ, PYTHONIOENCODING="utf-8"),
    )


def start_client(*args: str) -> subprocess.Popen[bytes]:
    """Start the client; read its output with L{read_line}."""
    return subprocess.Popen(
        [*CLIENT, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        env=dict(os.environ, PYTHONIOENCODING="utf-8"),
    )


def read_line(proc: subprocess.Popen[bytes], timeout: float = 30) -> str:
    """One line of C{proc}'s stdout (read byte-wise from the pipe: nothing buffered and lost)."""
    assert proc.stdout is not None
    deadline, line = time.monotonic() + timeout, b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        readable, _, _ = select.select([proc.stdout], [], [], max(remaining, 0))
        if not readable:
            raise AssertionError(f"no line within {timeout} s (got {line!r})")
        byte = os.read(proc.stdout.fileno(), 1)
        if not byte:
            raise AssertionError(f"client exited ({proc.wait()}) after {line!r}")
        line += byte
    return line.decode()


def finish(proc: subprocess.Popen[bytes], timeout: float = 30) -> tuple[int, str, str]:
    """Wait for C{proc}; its status, the rest of its stdout, and its stderr."""
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode(), err.decode()


def one_error_line(stderr: str) -> str:
    """The single line a failing client printed (no traceback, nothing else)."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("pistatsd-client: "), stderr
    return lines[0]


@pytest.fixture(scope="module")
def server() -> Iterator[Daemon]:
    daemon = Daemon(["--broadcast-interval", "0.2", "--sample-interval", "0.5"]).start()
    yield daemon
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.text()


@pytest.fixture
def url(server: Daemon) -> str:
    return f"http://127.0.0.1:{server.port}"


def test_console_script_help() -> None:
    result = subprocess.run([CONSOLE_SCRIPT, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for command in ("stats", "sum", "echo", "watch", "--cafile", "--insecure", "--timeout"):
        assert command in result.stdout


def test_stats_prints_indented_json(url: str) -> None:
    result = client("stats", url)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    snapshot = json.loads(result.stdout)
    assert {"cpu", "memory", "temperature", "uptime"} <= set(snapshot)
    assert '\n  "cpu": {\n    "percent": ' in result.stdout


def test_stats_interval(url: str) -> None:
    result = client("stats", url, "--interval", "0.3")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["cpu"]["interval"] == pytest.approx(0.3, abs=0.2)


def test_stats_summary(url: str) -> None:
    """One screen from the real daemon: what its /stats has, within 24 x 80."""
    result = client("stats", url, "--summary")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert 4 <= len(lines) <= 24, result.stdout
    assert all(len(line) <= 80 for line in lines), result.stdout
    assert "  up " in lines[0]
    assert lines[1].startswith("cpu ") and " load " in lines[1], lines
    assert lines[2].startswith("mem ") and " of " in lines[2], lines
    assert lines[3].startswith("net   rx "), lines
    snapshot = json.loads(client("stats", url).stdout)
    if snapshot.get("filesystems"):
        assert "filesystems" in lines
        assert any(line.startswith("  / ") for line in lines), lines
    if snapshot.get("processes"):
        assert any(line.startswith("procs ") for line in lines), lines


def test_stats_http_error_status(url: str) -> None:
    result = client("stats", url, "--interval", "11")
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert line.startswith(f"pistatsd-client: GET {url}/stats: HTTP 400 Bad Request: "), line
    assert "interval" in line


def test_sum_get(url: str) -> None:
    result = client("sum", url, "1", "2", "3")
    assert (result.returncode, result.stdout, result.stderr) == (0, "Sum: 6\n", "")
    result = client("sum", url, "1", "-2", "3.5")
    assert (result.returncode, result.stdout) == (0, "Sum: 2.5\n")


def test_sum_post(url: str) -> None:
    result = client("sum", url, "1", "2", "3", "--post")
    assert (result.returncode, result.stdout, result.stderr) == (0, "Sum: 6\n", "")
    result = client("sum", url, "--post", "0.5", "0.25")
    assert (result.returncode, result.stdout) == (0, "Sum: 0.75\n")


def test_sum_non_numeric_is_a_usage_error_before_any_request() -> None:
    # Nothing listens there: a request would fail with 1, not 2.
    with refused_port() as port:
        result = client("sum", f"http://127.0.0.1:{port}", "1", "two")
    assert result.returncode == 2
    assert "usage: pistatsd-client sum" in result.stderr
    assert "'two' is not a number" in result.stderr
    assert result.stdout == ""


def test_echo_three_lines(url: str) -> None:
    result = client("echo", url, stdin="one\nzwei °C\nthree\n")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "one\nzwei °C\nthree\n"


def test_echo_many_lines(url: str) -> None:
    """More lines than may be outstanding at once: stdin is paused and resumed, none lost."""
    lines = "".join(f"line {n}\n" for n in range(3000))
    result = client("echo", url, stdin=lines)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == lines


def test_echo_empty_input(url: str) -> None:
    result = client("echo", url, stdin="")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_watch_count(url: str) -> None:
    result = client("watch", url, "--count", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    for line in lines:
        assert TICK.match(line), line


def test_watch_wrong_path(url: str) -> None:
    result = client("watch", url + "/not-here", "--count", "1")
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "/not-here/ws/broadcast failed" in line and "404" in line, line


def test_watch_exits_0_on_sigint(url: str) -> None:
    proc = start_client("watch", url)
    try:
        assert TICK.match(read_line(proc).rstrip("\n"))
        proc.send_signal(signal.SIGINT)
        code, _, err = finish(proc)
    finally:
        proc.kill()
    assert (code, err) == (0, "")


def test_watch_when_the_server_stops_or_dies() -> None:
    daemon = Daemon(["--broadcast-interval", "0.2"]).start()
    try:
        proc = start_client("watch", f"http://127.0.0.1:{daemon.port}")
        read_line(proc)
        assert daemon.stop() == 0  # SIGTERM: the daemon closes WebSockets with 1001
        code, _, err = finish(proc)
        assert code == 0
        assert "server closed the connection (1001" in one_error_line(err)
    finally:
        proc.kill()
        daemon.stop()

    daemon = Daemon(["--broadcast-interval", "0.2"]).start()
    try:
        proc = start_client("watch", f"http://127.0.0.1:{daemon.port}")
        read_line(proc)
        daemon.proc.kill()  # no closing handshake at all
        code, _, err = finish(proc)
        assert code == 1
        assert (
            one_error_line(err)
            == f"pistatsd-client: the connection to 127.0.0.1:{daemon.port} was lost"
        )
    finally:
        proc.kill()
        daemon.stop()


@pytest.mark.parametrize(
    "command", [["stats"], ["sum", "1", "2"], ["sum", "--post", "1"], ["echo"], ["watch"]]
)
def test_unreachable_server(command: list[str]) -> None:
    with refused_port() as port:
        result = client(command[0], f"http://127.0.0.1:{port}", *command[1:])
    assert result.returncode == 1
    assert result.stdout == ""
    assert (
        one_error_line(result.stderr)
        == f"pistatsd-client: cannot connect to 127.0.0.1:{port}: connection refused"
    )


@pytest.mark.parametrize("command", [["stats"], ["echo"], ["watch"]])
def test_timeout_when_the_server_never_answers(command: list[str]) -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        result = client("--timeout", "0.5", command[0], f"http://127.0.0.1:{port}")
        elapsed = time.monotonic() - started
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert line.startswith("pistatsd-client: timed out after 0.5 s waiting for"), line
    assert f"127.0.0.1:{port}" in line
    assert elapsed < 30


@pytest.mark.parametrize(
    ("command", "path"),
    [
        (["stats", "--summary"], "/stats"),
        (["sum", "1", "2"], "/sum/"),
        (["echo"], "/ws/echo"),
        (["watch", "--count", "1"], "/ws/broadcast"),
    ],
)
def test_websocket_and_resource_urls(server: Daemon, command: list[str], path: str) -> None:
    """C{ws://host:port/...} and resource URLs work for every command, against the daemon."""
    for scheme in ("ws", "http"):
        url = f"{scheme}://127.0.0.1:{server.port}{path}"
        result = client(command[0], url, *command[1:], stdin="hi\n")
        assert result.returncode == 0, (url, result.stderr)
        assert result.stderr == ""
        if command[0] == "sum":
            assert result.stdout == "Sum: 3\n"
        elif command[0] == "echo":
            assert result.stdout == "hi\n"
        elif command[0] == "watch":
            assert result.stdout.count("\n") == 1, result.stdout
        else:  # the summary: one screen
            assert 4 <= result.stdout.count("\n") <= 24, result.stdout
            assert "  up " in result.stdout.splitlines()[0], result.stdout


@pytest.mark.parametrize("bad", ["localhost:8888", "ftp://127.0.0.1:21", "http://127.0.0.1:99999"])
def test_bad_url_is_a_usage_error(bad: str) -> None:
    result = client("stats", bad)
    assert result.returncode == 2
    assert "usage: pistatsd-client stats" in result.stderr
    assert "Traceback" not in result.stderr


# -- TLS: certificates made here, a small HTTPS + WSS server in a subprocess ---------------

NOW = datetime.datetime.now(datetime.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    key: ec.EllipticCurvePrivateKey,
    subject: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer: str,
    *,
    ca: bool,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(*items: ec.EllipticCurvePrivateKey | x509.Certificate) -> bytes:
    out = b""
    for item in items:
        if isinstance(item, x509.Certificate):
            out += item.public_bytes(serialization.Encoding.PEM)
        else:
            out += item.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
    return out


def _serve_tls() -> None:
    """A stand-in for the daemon's TLS side (run by L{TLSServer} in a subprocess):
    C{/stats}, C{/ws/echo} and C{/ws/broadcast} over HTTPS/WSS with the PEM in argv[1]."""
    from autobahn.twisted.resource import WebSocketResource
    from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString
    from twisted.web.server import Site

    class Stats(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            request.setHeader("Content-Type", "application/json")
            return _json({"hostname": "tls-test", "cpu": {"percent": 1.0}})

    class Echo(WebSocketServerProtocol):
        def onMessage(self, payload: bytes, isBinary: bool) -> None:
            self.sendMessage(payload, isBinary)

    class Broadcast(WebSocketServerProtocol):
        def onOpen(self) -> None:
            self.sendMessage(_json({"type": "hello", "interval": 0.1, "history": []}))
            for _ in range(3):
                self.sendMessage(_json(MESSAGE))

    def websocket(protocol: type[WebSocketServerProtocol]) -> WebSocketResource:
        factory = WebSocketServerFactory()
        factory.protocol = protocol
        return WebSocketResource(factory)

    root, ws = Resource(), Resource()
    root.putChild(b"stats", Stats())
    root.putChild(b"ws", ws)
    ws.putChild(b"echo", websocket(Echo))
    ws.putChild(b"broadcast", websocket(Broadcast))
    endpoint = serverFromString(reactor, f"ssl:0:interface=127.0.0.1:privateKey={sys.argv[1]}")
    listening = endpoint.listen(Site(root))
    listening.addCallback(lambda port: print(f"listening on {port.getHost().port}", flush=True))
    reactor.run()


class TLSServer(Daemon):
    """L{_serve_tls} in a subprocess, reusing the daemon helper's output handling."""

    def __init__(self, pem: Path) -> None:
        super().__init__()
        self.argv = [
            sys.executable,
            "-c",
            "from tests.test_client import _serve_tls; _serve_tls()",
            str(pem),
        ]
        self.cwd = PROJECT

    def start(self, timeout: float = 30.0) -> TLSServer:
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0, cwd=self.cwd
        )
        self.port = int(self.wait_for("listening on", timeout).split()[-1])
        return self


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two servers: one with a certificate from a private CA (valid for 127.0.0.1 only),
    one self-signed like the daemon's generated certificate; plus an unrelated CA."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key, other_key, leaf_key, self_key = (
        ec.generate_private_key(ec.SECP256R1()) for _ in "1234"
    )
    ca = _certificate(ca_key, "pistatsd test CA", ca_key, "pistatsd test CA", ca=True)
    other = _certificate(other_key, "another CA", other_key, "another CA", ca=True)
    loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    leaf = _certificate(
        leaf_key, "127.0.0.1", ca_key, "pistatsd test CA", ca=False, names=[loopback]
    )
    selfsigned = _certificate(
        self_key, "pi", self_key, "pi", ca=False, names=[x509.DNSName("localhost"), loopback]
    )
    files = {
        "ca": _pem(ca),
        "other-ca": _pem(other),
        "leaf": _pem(leaf_key, leaf, ca),
        "self": _pem(self_key, selfsigned),
        "self-cert": _pem(selfsigned),
    }
    paths = {name: folder / f"{name}.pem" for name in files}
    for name, data in files.items():
        paths[name].write_bytes(data)
    servers = [TLSServer(paths["leaf"]).start(), TLSServer(paths["self"]).start()]
    try:
        yield {
            "ca": str(paths["ca"]),
            "other-ca": str(paths["other-ca"]),
            "self-cert": str(paths["self-cert"]),
            "url": f"https://127.0.0.1:{servers[0].port}",
            "by-name": f"https://localhost:{servers[0].port}",
            "self-url": f"https://localhost:{servers[1].port}",
        }
    finally:
        for tls_server in servers:
            tls_server.stop()


def test_tls_private_ca(tls: dict[str, Any]) -> None:
    """A certificate issued by a private CA: trusted through --cafile naming that CA."""
    result = client("--cafile", tls["ca"], "stats", tls["url"])
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout)["hostname"] == "tls-test"
    result = client("echo", tls["url"], "--cafile", tls["ca"], stdin="over\nwss\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, "over\nwss\n", "")
    result = client("--cafile", tls["ca"], "watch", tls["url"], "--count", "2")
    assert (result.returncode, result.stderr) == (0, "")
    assert [bool(TICK.match(line)) for line in result.stdout.splitlines()] == [True, True]


@pytest.mark.parametrize("command", [["stats"], ["echo"], ["watch", "--count", "1"]])
def test_tls_another_ca(tls: dict[str, Any], command: list[str]) -> None:
    result = client("--cafile", tls["other-ca"], command[0], tls["url"], *command[1:])
    assert (result.returncode, result.stdout) == (1, "")
    line = one_error_line(result.stderr)
    assert line.startswith(f"pistatsd-client: TLS handshake with {tls['url'][8:]} failed: ")
    assert "certificate verify failed" in line, line


@pytest.mark.parametrize("command", [["stats"], ["echo"]])
def test_tls_certificate_for_another_host(tls: dict[str, Any], command: list[str]) -> None:
    result = client("--cafile", tls["ca"], command[0], tls["by-name"], *command[1:])
    assert result.returncode == 1
    assert one_error_line(result.stderr) == (
        f"pistatsd-client: TLS handshake with {tls['by-name'][8:]} failed:"
        " the certificate is not valid for this host"
    )


# -- TLS against the real daemon (--tls with its generated self-signed certificate) -----------


@pytest.fixture(scope="module")
def tls_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    state = tmp_path_factory.mktemp("state")
    daemon = Daemon(
        [
            "--tls",
            "ssl:0:interface=127.0.0.1",
            "--state-dir",
            str(state),
            "--broadcast-interval",
            "0.2",
        ]
    ).start()
    try:
        # Wherever in the state dir the daemon keeps it: the file with a certificate in it.
        [certificate] = [
            path
            for path in state.rglob("*")
            if path.is_file() and b"BEGIN CERTIFICATE" in path.read_bytes()
        ]
        tls_port = daemon.bound_port("tls")
        yield {"url": f"https://127.0.0.1:{tls_port}", "cafile": str(certificate)}
    finally:
        assert daemon.stop() == 0
    assert "Traceback" not in daemon.text()


def test_daemon_tls_cafile(tls_daemon: dict[str, str]) -> None:
    url, cafile = tls_daemon["url"], tls_daemon["cafile"]
    result = client("--cafile", cafile, "stats", url, "--interval", "0.2")
    assert (result.returncode, result.stderr) == (0, "")
    assert "cpu" in json.loads(result.stdout)
    result = client("--cafile", cafile, "sum", url.replace("127.0.0.1", "localhost"), "1", "2")
    assert (result.returncode, result.stdout, result.stderr) == (0, "Sum: 3\n", "")
    result = client("--cafile", cafile, "sum", url, "--post", "4", "5")
    assert (result.returncode, result.stdout, result.stderr) == (0, "Sum: 9\n", "")
    result = client("--cafile", cafile, "echo", url, stdin="one\ntwo\nthree\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, "one\ntwo\nthree\n", "")
    result = client("--cafile", cafile, "watch", url, "--count", "2")
    assert (result.returncode, result.stderr) == (0, "")
    assert [bool(TICK.match(line)) for line in result.stdout.splitlines()] == [True, True]


def test_daemon_tls_wss_urls(tls_daemon: dict[str, str]) -> None:
    """C{wss://host:port/ws/...} as pasted from a browser means the daemon's HTTPS side."""
    wss, cafile = tls_daemon["url"].replace("https://", "wss://"), tls_daemon["cafile"]
    result = client("--cafile", cafile, "echo", wss + "/ws/echo", stdin="one\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, "one\n", "")
    result = client("--cafile", cafile, "sum", wss + "/ws/broadcast/", "1", "2")
    assert (result.returncode, result.stdout, result.stderr) == (0, "Sum: 3\n", "")
    result = client("--cafile", cafile, "watch", wss, "--count", "1")
    assert (result.returncode, result.stderr) == (0, "")
    assert TICK.match(result.stdout.rstrip("\n")), result.stdout


def test_daemon_tls_insecure(tls_daemon: dict[str, str]) -> None:
    warning = "pistatsd-client: warning: --insecure: the server's certificate is not checked\n"
    result = client("--insecure", "stats", tls_daemon["url"])
    assert (result.returncode, result.stderr) == (0, warning)
    assert "cpu" in json.loads(result.stdout)
    result = client("--insecure", "echo", tls_daemon["url"], stdin="a\nb\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, "a\nb\n", warning)
    result = client("watch", tls_daemon["url"], "--insecure", "--count", "1")
    assert (result.returncode, result.stderr) == (0, warning)
    assert TICK.match(result.stdout.rstrip("\n"))


@pytest.mark.parametrize("command", [["stats"], ["sum", "1"], ["echo"], ["watch", "--count", "1"]])
def test_daemon_tls_untrusted_without_cafile(
    tls_daemon: dict[str, str], command: list[str]
) -> None:
    url = tls_daemon["url"]
    result = client(command[0], url, *command[1:])
    assert (result.returncode, result.stdout) == (1, "")
    assert one_error_line(result.stderr) == (
        f"pistatsd-client: TLS handshake with {url[8:]} failed: certificate verify failed"
        " (use --cafile FILE to trust a private CA or self-signed certificate)"
    )
