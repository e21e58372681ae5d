"""C{pistatsd-client history}: arguments, the request it sends, sparklines and tables."""

from __future__ import annotations

import contextlib
import io
import json
import time

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request

from pistatsd.client import rest
from pistatsd.client.cli import duration, parse_arguments
from pistatsd.client.failures import ClientError
from pistatsd.client.formatting import format_sparklines, format_table, sparkline
from pistatsd.client.urls import BaseURL

BASE = BaseURL(False, "127.0.0.1", 8888)
NOW = 1_800_000_000.0
ANSWER = {
    "from": NOW - 240,
    "to": NOW,
    "step": 60,
    "t": [NOW - 240, NOW - 180, NOW - 120, NOW - 60],
    "values": {
        "cpu.percent": {
            "min": [1.0, 2.0, None, 0.5],
            "avg": [2.0, 50.0, None, 98.0],
            "max": [3.0, 60.0, None, 99.5],
        },
        "memory.percent": {"min": [40.0] * 4, "avg": [40.0] * 4, "max": [40.0] * 4},
    },
}


def usage_error(argv: list[str]) -> str:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as info:
        parse_arguments(argv)
    assert info.value.code == 2
    return stderr.getvalue()


class ArgumentTests(SynchronousTestCase):
    def test_durations(self) -> None:
        self.assertEqual(
            [duration(t) for t in ("15m", "1h", "24h", "7d", "2w", "1y", "30s")],
            [900.0, 3600.0, 86400.0, 604800.0, 1209600.0, 31536000.0, 30.0],
        )

    def test_bad_durations(self) -> None:
        for text in ("", "h", "1", "1x", "-1h", "+1h", "0h", "1.5h", "\u0661h", "1 h", "11y", "1H"):
            error = usage_error(["history", "http://h:1", "--series", "a", "--since", text])
            self.assertIn("--since", error, text)

    def test_parsed(self) -> None:
        argv = ["history", "http://h:1", "--series", "cpu.percent", "--series", "load.1"]
        argv += ["--since", "7d", "--points", "120", "--table"]
        invocation = parse_arguments(argv)
        self.assertEqual(invocation.command, "history")
        self.assertEqual(invocation.series, ("cpu.percent", "load.1"))
        self.assertEqual(
            (invocation.since, invocation.points, invocation.table), (604800.0, 120, True)
        )

    def test_defaults(self) -> None:
        invocation = parse_arguments(["history", "http://h:1", "--series", "cpu.percent"])
        self.assertEqual(
            (invocation.since, invocation.points, invocation.table), (3600.0, 60, False)
        )

    def test_series_required_and_checked(self) -> None:
        self.assertIn("--series", usage_error(["history", "http://h:1"]))
        self.assertIn("series name", usage_error(["history", "http://h:1", "--series", "a,b"]))
        self.assertIn("series name", usage_error(["history", "http://h:1", "--series", ""]))

    def test_points_bounds(self) -> None:
        for text in ("0", "5001", "1.5", "x"):
            error = usage_error(["history", "http://h:1", "--series", "a", "--points", text])
            self.assertIn("--points", error, text)


class SeriesServer(Resource):
    isLeaf = True

    def __init__(self, code: int = 200, body: bytes = json.dumps(ANSWER).encode()) -> None:
        super().__init__()
        self.code, self.body = code, body
        self.asked: list[tuple[bytes, dict[bytes, list[bytes]]]] = []

    def render_GET(self, request: Request) -> bytes:
        self.asked.append((request.path, request.args))
        request.setResponseCode(self.code)
        return self.body


class RequestTests(SynchronousTestCase):
    def run_history(self, server: SeriesServer, table: bool = False):
        lines: list[str] = []
        stub = StubTreq(server)
        names = ["cpu.percent", "memory.percent"]
        d = ensureDeferred(
            rest.history(Clock(), stub, BASE, 5, lines.append, names, 86400, 4, table, now=NOW)
        )
        stub.flush()
        return d, lines

    def test_request(self) -> None:
        server = SeriesServer()
        d, lines = self.run_history(server)
        self.successResultOf(d)
        [(path, args)] = server.asked
        self.assertEqual(path, b"/stats/series")
        self.assertEqual(
            args,
            {
                b"names": [b"cpu.percent,memory.percent"],
                b"from": [b"1799913600"],
                b"to": [b"1800000000"],
                b"points": [b"4"],
            },
        )
        self.assertEqual(len(lines), 3)
        self.assertTrue(lines[0].startswith("from "), lines[0])
        self.assertEqual(lines[1], "cpu.percent     ▁▅ █  min 0.5  avg 50.0  max 99.5")
        self.assertEqual(lines[2], "memory.percent  ▁▁▁▁  min 40.0  avg 40.0  max 40.0")

    def test_table(self) -> None:
        d, lines = self.run_history(SeriesServer(), table=True)
        self.successResultOf(d)
        clock = time.strftime("%H:%M:%S", time.localtime(NOW - 120))
        self.assertEqual(lines[1].split(), ["time", "cpu.percent", "memory.percent"])
        self.assertEqual(lines[4].split(), [clock, "-", "40.0"])
        self.assertEqual(lines[-3].split(), ["min", "0.5", "40.0"])
        self.assertEqual(lines[-1].split(), ["max", "99.5", "40.0"])
        self.assertEqual(len(lines), 2 + 4 + 3)

    def test_server_error_is_one_line(self) -> None:
        server = SeriesServer(400, b'{"error": "unknown series: nope"}')
        d, lines = self.run_history(server)
        error = self.failureResultOf(d, ClientError).value
        self.assertEqual(
            str(error),
            "GET http://127.0.0.1:8888/stats/series: HTTP 400 Bad Request: unknown series: nope",
        )
        self.assertEqual(lines, [])

    def test_not_a_series_answer(self) -> None:
        for body in (b"<html>", b"[]", b'{"values": 3}'):
            d, _ = self.run_history(SeriesServer(body=body))
            self.assertIn("answer is not", str(self.failureResultOf(d, ClientError).value))


class SparklineTests(SynchronousTestCase):
    def test_scaled_from_lowest_to_highest(self) -> None:
        self.assertEqual(sparkline([0, 1, 2, 3, 4, 5, 6, 7]), "▁▂▃▄▅▆▇█")

    def test_gaps_and_flat(self) -> None:
        self.assertEqual(sparkline([None, 5.0, None, 5.0]), " ▁ ▁")
        self.assertEqual(sparkline([None, None]), "  ")
        self.assertEqual(sparkline([]), "")

    def test_missing_series_shows_dashes(self) -> None:
        lines = format_sparklines(ANSWER, ["nope"])
        self.assertEqual(lines[1], "nope    min -  avg -  max -")
        self.assertEqual(format_table({"values": {}}, ["nope"])[-1].split(), ["max", "-"])
