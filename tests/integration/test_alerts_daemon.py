"""Alerts in the real daemon over loopback (SPEC §13): a sensor file's value crosses a rule's
threshold; /api/alerts shows pending, then firing after `for`; hysteresis holds it until
past `clear`; the history lists the changes and keeps them across a restart, and an
alert firing at a restart goes on firing without a new change."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import Daemon
from tests.integration.test_influx_real import influxd  # noqa: F401  (a fixture)
from tests.integration.test_metrics_machine import promtool_problems

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Any]:
    root = tmp_path / "root"
    root.mkdir()
    (root / "temp").write_text("21000\n")
    state = tmp_path / "state"
    config = tmp_path / "p.toml"
    config.write_text(
        f"sensor-root = [{json.dumps(str(root))}]\n"
        f"state-dir = {json.dumps(str(state))}\n"
        "sample-interval = 0.1\n"
        "[alerts.hot]\n"
        'series = "sensors.room"\n'
        "above = 30\n"
        "for = 2\n"
        "clear = 25\n"
        'severity = "critical"\n'
    )
    return {"root": root, "state": state, "config": config}


def get_json(d: Daemon, path: str) -> Any:
    status, _, raw = d.get(path)
    assert status == 200, raw
    return json.loads(raw)


def hot(d: Daemon) -> dict[str, Any] | None:
    alerts = get_json(d, "/api/alerts")["alerts"]
    return next((a for a in alerts if a["name"] == "hot"), None)


def wait_for(
    d: Daemon, until: Callable[[dict[str, Any] | None], bool], timeout: float = 20.0
) -> Any:
    """The C{hot} alert once C{until(alert)} holds, polled over HTTP (no sleeping)."""
    deadline = time.monotonic() + timeout
    while True:
        alert = hot(d)
        if until(alert):
            return alert
        assert time.monotonic() < deadline, alert
        d.get("/alive")


def set_reading(setup: dict[str, Any], millidegrees: int) -> None:
    path = setup["root"] / "temp"
    spare = path.with_suffix(".new")
    spare.write_text(f"{millidegrees}\n")
    spare.replace(path)


def hot_history(d: Daemon) -> list[tuple[str, str, float]]:
    history = get_json(d, "/api/alerts/history?limit=1000")["history"]
    return [(h["from"], h["state"], h["value"]) for h in history if h["name"] == "hot"]


def test_threshold_for_clear_and_history_across_restart(daemon, setup):
    d = daemon("--config", str(setup["config"]))
    body = json.dumps({"name": "room", "path": str(setup["root"] / "temp"), "scale": 0.001})
    status, _, raw = d.get("/api/sensors", JSON, "POST", body.encode())
    assert status == 201, raw

    alert = wait_for(d, lambda a: a is not None and a["value"] == 21.0)
    assert alert["state"] == "ok"
    assert (alert["series"], alert["severity"]) == ("sensors.room", "critical")

    set_reading(setup, 35000)
    pending = wait_for(d, lambda a: a is not None and a["state"] != "ok")
    assert pending["state"] == "pending", pending
    assert pending["value"] == 35.0
    firing = wait_for(d, lambda a: a is not None and a["state"] == "firing")
    assert firing["since"] - pending["since"] >= 2.0  # "for = 2", on the daemon's clock

    shown = subprocess.run(
        [sys.executable, "-m", "pistatsd.client", "alerts", f"http://127.0.0.1:{d.port}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if line.startswith("hot "))
    assert row.split()[:4] == ["hot", "firing", "critical", "35"], shown.stdout

    raw_metrics = d.get("/metrics")[2]
    metrics = raw_metrics.decode()
    assert 'pistatsd_alert_firing{alert="hot",severity="critical"} 1.0' in metrics
    changes = re.search(r"^pistatsd_alert_changes_total (\S+)$", metrics, re.M)
    assert changes is not None and float(changes.group(1)) >= 2  # built-ins may change too
    promtool = shutil.which("promtool")  # (test_metrics_machine requires it)
    if promtool is not None:
        assert promtool_problems(promtool, raw_metrics) == ""
    health = get_json(d, "/health")
    assert health["alerts"]["firing"] >= 1 and health["alerts"]["log_persistent"] is True
    assert health["alerts"]["rules"] == 9  # the built-ins and hot
    assert health["notify"] == {"notifiers": {}}
    links = get_json(d, "/api")["links"]
    assert (links["alerts"], links["alerts_history"]) == ("/api/alerts", "/api/alerts/history")

    set_reading(setup, 27000)  # under the threshold, over clear: still firing
    wait_for(d, lambda a: a is not None and a["value"] == 27.0)
    assert hot(d)["state"] == "firing"
    set_reading(setup, 20000)
    ok = wait_for(d, lambda a: a is not None and a["state"] == "ok")
    assert ok["value"] == 20.0

    expected = [("firing", "ok", 20.0), ("pending", "firing", 35.0), ("ok", "pending", 35.0)]
    assert hot_history(d) == expected
    line = d.wait_for("alert hot pending -> firing", 5)  # logged once, with its fields
    assert "sensors.room = 35.0, critical" in line

    assert d.stop() == 0
    assert "Traceback" not in d.text()
    assert d.text().count("alert hot pending -> firing") == 1

    d = daemon("--config", str(setup["config"]))
    # Loaded back from the history database at start (polled: the load runs on its thread).
    deadline = time.monotonic() + 10
    while hot_history(d) != expected:
        assert time.monotonic() < deadline, hot_history(d)
        d.get("/alive")
    status, _, raw = d.get("/api/alerts/history?limit=0")
    assert status == 400 and b"limit" in raw
    status, _, raw = d.get("/api/alerts/test", JSON, "POST", b"")
    assert status == 200, raw
    assert json.loads(raw) == {"notifiers": {}}

    # Firing across a restart: it goes on firing (same since), with no new change.
    set_reading(setup, 36000)
    fired = wait_for(d, lambda a: a is not None and a["state"] == "firing")
    assert d.stop() == 0
    d = daemon("--config", str(setup["config"]))
    again = wait_for(d, lambda a: a is not None and a["value"] == 36.0)
    assert (again["state"], again["since"]) == ("firing", fired["since"])
    assert hot_history(d)[:2] == [("pending", "firing", 36.0), ("ok", "pending", 36.0)]
    assert len(hot_history(d)) == 5


@pytest.mark.real
def test_changes_reach_a_real_influxdb(influxd, daemon, tmp_path: Path):  # noqa: F811
    """Each change is an C{alerts} point in InfluxDB (tags alert and severity)."""
    server = influxd()
    config = tmp_path / "influx.toml"
    config.write_text(
        f"influx = {json.dumps(server.url)}\n"
        "influx-create-db = true\n"
        "report-interval = 1\n"
        f"state-dir = {json.dumps(str(tmp_path / 'state'))}\n"
        "sample-interval = 0.2\n"
        "[alerts.always]\n"
        'series = "load.1"\n'
        "below = 1000000\n"
        'severity = "critical"\n'
    )
    d = daemon("--config", str(config))
    rows = server.wait_until(
        lambda: server.values(
            "SELECT state, level, value FROM alerts"
            " WHERE alert = 'always' AND severity = 'critical'"
        ),
        60,
        "the alert's point in InfluxDB",
    )
    [[_time, state, level, value]] = rows
    assert (state, level) == ("firing", 2)
    assert isinstance(value, int | float) and value >= 0  # load.1 when it fired
    [change] = [h for h in get_json(d, "/api/alerts/history")["history"] if h["name"] == "always"]
    assert abs(change["value"] - value) < 1e-9
    assert d.stop() == 0
