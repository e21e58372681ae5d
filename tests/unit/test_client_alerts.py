"""C{pistatsd-client alerts}: the request it sends and the compact table it prints."""

from __future__ import annotations

import json

from treq.testing import StubTreq
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request

from pistatsd.client import rest
from pistatsd.client.alerts import format_alerts
from pistatsd.client.cli import parse_arguments
from pistatsd.client.failures import ClientError
from pistatsd.client.urls import BaseURL

BASE = BaseURL(False, "127.0.0.1", 8888)
NOW = 1_800_000_000.0


def alert(name: str, state: str, severity: str = "warning", value: object = 1.0, age: float = 5):
    return {
        "name": name,
        "series": "x.y",
        "state": state,
        "since": NOW - age,
        "value": value,
        "severity": severity,
    }


ANSWER = {
    "alerts": [
        alert("memory", "ok", value=37.25, age=7200),
        alert("filesystem-full:/boot", "firing", value=93.4, age=125),
        alert("temperature", "firing", "critical", 81.5, age=3 * 86400),
        alert("hot", "pending", value=None, age=30),
    ]
}


class FormatTests(SynchronousTestCase):
    def test_table_worst_first(self) -> None:
        self.assertEqual(
            format_alerts(ANSWER, NOW),
            [
                "ALERT                  STATE    SEVERITY  VALUE  SINCE",
                "temperature            firing   critical  81.5   3d",
                "filesystem-full:/boot  firing   warning   93.4   2m",
                "hot                    pending  warning   -      30s",
                "memory                 ok       warning   37.25  2h",
                "2 firing, 1 pending, 4 in all",
            ],
        )

    def test_none(self) -> None:
        self.assertEqual(format_alerts({"alerts": []}, NOW), ["no alerts"])

    def test_long_names_are_cut(self) -> None:
        [_, row, _] = format_alerts({"alerts": [alert("x" * 60, "ok")]}, NOW)
        self.assertTrue(row.startswith("x" * 39 + "\u2026 "))

    def test_not_an_alerts_answer(self) -> None:
        for document in ([], {"alerts": 3}, {"sensors": []}):
            with self.assertRaises(ClientError):
                format_alerts(document, NOW)


class Server(Resource):
    isLeaf = True

    def __init__(self, code: int = 200, body: bytes = json.dumps(ANSWER).encode()) -> None:
        super().__init__()
        self.code, self.body = code, body
        self.asked: list[bytes] = []

    def render_GET(self, request: Request) -> bytes:
        self.asked.append(request.path)
        request.setResponseCode(self.code)
        return self.body


class RequestTests(SynchronousTestCase):
    def run_alerts(self, server: Server):
        lines: list[str] = []
        stub = StubTreq(server)
        d = ensureDeferred(rest.alerts(Clock(), stub, BASE, 5, lines.append, now=NOW))
        stub.flush()
        return d, lines

    def test_request_and_output(self) -> None:
        server = Server()
        d, lines = self.run_alerts(server)
        self.successResultOf(d)
        self.assertEqual(server.asked, [b"/api/alerts"])
        self.assertEqual(lines[-1], "2 firing, 1 pending, 4 in all")

    def test_errors_are_one_line(self) -> None:
        d, _ = self.run_alerts(Server(404, b'{"error": "no such resource: /api/alerts"}'))
        failure = self.failureResultOf(d, ClientError)
        self.assertEqual(
            str(failure.value),
            "GET http://127.0.0.1:8888/api/alerts: HTTP 404 Not Found: "
            "no such resource: /api/alerts",
        )
        d, _ = self.run_alerts(Server(200, b"<html>"))
        self.assertIn("not JSON", str(self.failureResultOf(d, ClientError).value))
        d, _ = self.run_alerts(Server(200, b"{}"))
        self.assertIn("not an alerts answer", str(self.failureResultOf(d, ClientError).value))

    def test_command_line(self) -> None:
        invocation = parse_arguments(["alerts", "http://pi:8888"])
        self.assertEqual(invocation.command, "alerts")
