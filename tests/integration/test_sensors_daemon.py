"""Sensors in the real daemon over loopback: CRUD, /stats, restarts, command sensors."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import Daemon

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Any]:
    root = tmp_path / "root"
    root.mkdir()
    (root / "temp").write_text("21500\n")
    state = tmp_path / "state"
    config = tmp_path / "p.toml"
    config.write_text(
        f"sensor-root = [{json.dumps(str(root))}]\n"
        f"state-dir = {json.dumps(str(state))}\n"
        "sample-interval = 0.05\n"
        "[sensors.answer]\n"
        f"command = [{json.dumps(sys.executable)}, '-c', 'print(\"answer=42\")']\n"
        'pattern = "answer=(\\\\d+)"\n'
        'unit = "units"\n'
    )
    return {"root": root, "state": state, "config": config}


def call(d: Daemon, method: str, path: str, document: Any = None, **headers: str) -> Any:
    body = json.dumps(document).encode() if document is not None else None
    all_headers = dict(JSON if body is not None else {}, **headers)
    status, response_headers, raw = d.get(path, all_headers, method, body)
    return status, response_headers, json.loads(raw) if raw else None


def stats_sensors(d: Daemon, until: Any, timeout: float = 10.0) -> dict[str, Any]:
    """The C{sensors} section of /stats once C{until(section)} holds (polled, no sleeping)."""
    deadline = time.monotonic() + timeout
    while True:
        section = json.loads(d.get("/stats")[2]).get("sensors", {})
        if until(section):
            return section
        assert time.monotonic() < deadline, section
        d.get("/alive")  # one more round trip while the sampler ticks


def test_crud_stats_and_restart(daemon, setup):
    d = daemon("--config", str(setup["config"]))
    temp = str(setup["root"] / "temp")
    status, headers, document = call(
        d, "POST", "/api/sensors", {"name": "room", "path": temp, "scale": 0.001, "unit": "C"}
    )
    assert status == 201, document
    assert headers["Location"] == "/api/sensors/room"
    assert document["value"] == 21.5  # read (in a worker thread) before the answer

    # The sampler reads the new sensor itself, and the command sensor's first
    # run may still be going: wait for a reading of both.
    section = stats_sensors(
        d,
        lambda s: all(
            s.get(name, {}).get("error", "no reading yet") != "no reading yet"
            for name in ("room", "answer")
        ),
    )
    assert section["room"] == {"value": 21.5, "unit": "C", "error": None}
    assert section["answer"] == {"value": 42.0, "unit": "units", "error": None}

    status, _, listing = call(d, "GET", "/api/sensors")
    assert status == 200
    assert [s["name"] for s in listing["sensors"]] == ["answer", "room"]
    assert listing["sensors"][0]["read_only"] is True
    status, headers, text = d.get("/api/sensors", {"Accept": "text/plain"})
    assert text == b"answer 42.0 units\nroom 21.5 C\n"

    status, _, document = call(d, "PUT", "/api/sensors/room", {"path": temp, "scale": 0.01})
    assert (status, document["value"]) == (200, 215.0)
    assert call(d, "PUT", "/api/sensors/answer", {"path": temp})[0] == 403
    assert call(d, "POST", "/api/sensors", {"name": "x", "path": "/etc/passwd"})[0] == 400
    assert call(d, "POST", "/api/sensors", {"name": "gone", "path": temp})[0] == 201
    assert call(d, "DELETE", "/api/sensors/gone")[0] == 204
    assert call(d, "GET", "/api/sensors/gone")[0] == 404

    assert d.stop() == 0
    assert "Traceback" not in d.text()
    # Nothing of the sensors but their file (the history database lives there too).
    state = sorted(p.name for p in setup["state"].iterdir())
    assert [name for name in state if not name.startswith("history.sqlite3")] == ["sensors.json"]

    d = daemon("--config", str(setup["config"]))
    status, _, document = call(d, "GET", "/api/sensors/room")
    assert status == 200
    assert (document["scale"], document["unit"]) == (0.01, "")
    assert call(d, "GET", "/api/sensors/gone")[0] == 404
    section = stats_sensors(d, lambda s: s.get("room", {}).get("value") == 215.0)
    assert set(section) == {"answer", "room"}


def test_token_over_http(daemon, setup):
    d = daemon("--config", str(setup["config"]), env={"PISTATSD_API_TOKEN": "s3cret"})
    document = {"name": "room", "path": str(setup["root"] / "temp")}
    status, headers, body = call(d, "POST", "/api/sensors", document)
    assert status == 401, body
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert call(d, "POST", "/api/sensors", document, Authorization="Bearer nope")[0] == 403
    assert call(d, "POST", "/api/sensors", document, Authorization="Bearer s3cret")[0] == 201
    assert call(d, "GET", "/api/sensors/room")[0] == 200
    assert "s3cret" not in d.text()


def test_corrupt_file_at_start(daemon, setup):
    setup["state"].mkdir()
    (setup["state"] / "sensors.json").write_text("{oops")
    d = daemon("--config", str(setup["config"]))
    status, _, listing = call(d, "GET", "/api/sensors")
    assert status == 200
    assert [s["name"] for s in listing["sensors"]] == ["answer"]
    names = [p.name for p in setup["state"].iterdir() if not p.name.startswith("history.sqlite3")]
    assert len(names) == 1 and names[0].startswith("sensors.json.corrupt-"), names
    assert "is corrupt" in d.text()
