"""pistatsd-client in memory: URLs, arguments, formatting, failures, REST over
StubTreq and the WebSocket sessions."""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
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
from tests.client_support import MESSAGE, TICK, _certificate, _json

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
