"""An alert from a sensor file to a webhook, through the real daemon: one firing, one resolve."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import Daemon


class Receiver:
    """A webhook receiver on loopback that keeps every JSON body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                with receiver.arrived:
                    receiver.bodies.append(body)
                    receiver.arrived.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """The bodies once at least C{count} have arrived (waits on a condition, no polling)."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.bodies) >= count, timeout)
            return list(self.bodies)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def alerts(d: Daemon) -> dict[str, dict[str, Any]]:
    status, _, body = d.get("/api/alerts")
    assert status == 200
    return {a["name"]: a for a in json.loads(body)["alerts"]}


def wait_state(d: Daemon, name: str, state: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = alerts(d).get(name)
        if found is not None and found["state"] == state:
            return found
        assert time.monotonic() < deadline, found
        d.get("/alive")  # another round trip while the sampler ticks


def wait_value(d: Daemon, name: str, value: float, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = alerts(d).get(name)
        if found is not None and found["value"] == value:
            return found
        assert time.monotonic() < deadline, found
        d.get("/alive")


def test_sensor_crosses_threshold_fires_once_and_resolves_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    value = root / "level"
    value.write_text("10\n")
    config = tmp_path / "p.toml"
    config.write_text(
        f"sensor-root = [{json.dumps(str(root))}]\n"
        "sample-interval = 0.1\n"
        "[alerts.tank]\n"
        'series = "sensors.tank"\n'
        "above = 50\n"
        "for = 1\n"
        "clear = 40\n"
        'severity = "critical"\n'
        "[notify.hook]\n"
        f"webhook = {json.dumps(receiver.url)}\n"
    )
    d = Daemon(["--config", str(config)]).start()
    try:
        document = json.dumps({"name": "tank", "path": str(value)}).encode()
        status, _, body = d.get(
            "/api/sensors", {"Content-Type": "application/json"}, "POST", document
        )
        assert status == 201, body
        assert wait_state(d, "tank", "ok")["value"] == 10

        value.write_text("60\n")
        pending = wait_state(d, "tank", "pending")
        firing = wait_state(d, "tank", "firing")
        assert firing["since"] - pending["since"] >= 1.0  # held for `for` first
        (message,) = receiver.wait_for(1)
        assert message["alert"] == "tank"
        assert message["state"] == "firing"
        assert message["severity"] == "critical"
        assert message["series"] == "sensors.tank"
        assert message["value"] == 60

        value.write_text("45\n")  # below the threshold, above `clear`: still firing
        assert wait_value(d, "tank", 45)["state"] == "firing"
        value.write_text("30\n")
        wait_state(d, "tank", "ok")
        bodies = receiver.wait_for(2)
        assert [b["state"] for b in bodies] == ["firing", "ok"]
        assert bodies[1]["value"] == 30

        status, _, body = d.get("/api/alerts/history?limit=10")
        history = [h for h in json.loads(body)["history"] if h["name"] == "tank"]
        assert [(h["from"], h["state"]) for h in history] == [
            ("firing", "ok"),
            ("pending", "firing"),
            ("ok", "pending"),
        ]
    finally:
        assert d.stop() == 0
    assert "Traceback" not in d.text()
    assert len(receiver.bodies) == 2  # exactly one firing and one resolve
