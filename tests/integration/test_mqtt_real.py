"""The real daemon against a real mosquitto: state, discovery, availability, faults, TLS.

Skipped when mosquitto is not installed, failed in CI (C{PISTATSD_REQUIRE_REAL=1}).
Every wait polls with a deadline, never sleeps.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.certificates import cert_pem, key_pem, make_ca, make_leaf, write
from tests.daemon import Daemon
from tests.mosquitto import Mosquitto

pytestmark = pytest.mark.real

PREFIX = "test/pi"
STATE = f"{PREFIX}/state"
AVAILABILITY = f"{PREFIX}/availability"
DEADLINE = 45.0
"""Generous: the reconnect backoff (1, 2, 4, 8 ... s, with jitter) can put the next
attempt some 16 s away after a few failures on a loaded machine."""


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """Make mosquitto brokers in temp dirs (not started); all stopped at teardown."""
    made: list[Mosquitto] = []

    def make(**kw: Any) -> Mosquitto:
        root = tmp_path / f"mosquitto{len(made)}"
        root.mkdir()
        broker = Mosquitto(str(root), **kw)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.stop()


def mqtt_args(broker: Mosquitto, tmp_path: Path, *extra: str, state: str = "state") -> list[str]:
    return [
        "--mqtt",
        broker.url,
        "--mqtt-interval",
        "1",
        "--mqtt-prefix",
        PREFIX,
        "--history-db",
        "none",
        "--state-dir",
        str(tmp_path / state),
        *extra,
    ]


def health(d: Daemon) -> dict[str, Any]:
    return json.loads(d.get("/health")[2])["mqtt"]


def held_state(broker: Mosquitto, **kw: Any) -> dict[str, Any] | None:
    payload = broker.retained(STATE, **kw).get(STATE)
    return json.loads(payload) if payload else None


def configs(broker: Mosquitto, **kw: Any) -> dict[str, dict[str, Any]]:
    return {
        topic: json.loads(payload)
        for topic, payload in broker.retained("homeassistant/#", **kw).items()
        if payload
    }


def test_state_and_discovery_arrive_retained(brokers, daemon, tmp_path):
    broker = brokers().start()
    d = daemon(*mqtt_args(broker, tmp_path))
    state = broker.wait_until(
        lambda: (s := held_state(broker)) and s.get("filesystems") and s, DEADLINE, "a state"
    )
    for key in ("cpu_percent", "memory_percent", "temperature", "load_1", "load_5", "load_15"):
        assert key in state
    assert state["memory_percent"] > 0
    assert state["uptime"] > 0
    assert "/" in state["filesystems"]
    assert broker.retained(AVAILABILITY) == {AVAILABILITY: b"online"}

    found = broker.wait_until(
        lambda: (c := configs(broker)) and any("/fs_root_" in t for t in c) and c,
        DEADLINE,
        "discovery configs",
    )
    by_name = {config["name"]: config for config in found.values()}
    assert {"CPU", "Memory", "Temperature", "Uptime", "Load 1 min", "Filesystem /"} <= set(by_name)
    cpu = by_name["CPU"]
    assert cpu["state_topic"] == STATE
    assert cpu["availability_topic"] == AVAILABILITY
    assert cpu["unit_of_measurement"] == "%"
    assert cpu["device"]["sw_version"]
    assert len({c["unique_id"] for c in found.values()}) == len(found)

    mqtt = health(d)
    assert mqtt["enabled"] is True and mqtt["connected"] is True
    assert mqtt["publishes"] > 0 and mqtt["entities"] == len(found)
    metrics = d.get("/metrics")[2].decode()
    assert "pistatsd_mqtt_connected 1.0" in metrics
    assert "pistatsd_mqtt_publishes_total" in metrics
    assert d.stop() == 0
    assert f"MQTT connected to 127.0.0.1:{broker.port}" in d.text()
    assert broker.url not in d.text(), "the URL is never logged"


def test_offline_after_sigterm(brokers, daemon, tmp_path):
    broker = brokers().start()
    d = daemon(*mqtt_args(broker, tmp_path))
    broker.wait_until(
        lambda: broker.retained(AVAILABILITY).get(AVAILABILITY) == b"online", DEADLINE, "online"
    )
    assert d.stop() == 0
    assert broker.retained(AVAILABILITY) == {AVAILABILITY: b"offline"}
    assert "Traceback" not in d.text()


def test_last_will_after_kill_9(brokers, daemon, tmp_path):
    broker = brokers().start()
    d = daemon(*mqtt_args(broker, tmp_path))
    broker.wait_until(
        lambda: broker.retained(AVAILABILITY).get(AVAILABILITY) == b"online", DEADLINE, "online"
    )
    assert d.proc is not None
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(10)
    broker.wait_until(
        lambda: broker.retained(AVAILABILITY).get(AVAILABILITY) == b"offline",
        DEADLINE,
        "the last will",
    )


def test_broker_started_after_the_daemon_is_picked_up(brokers, daemon, tmp_path):
    broker = brokers()  # not started yet: its port refuses connections
    d = daemon(*mqtt_args(broker, tmp_path))
    assert d.proc is not None
    broker.wait_until(
        lambda: health(d)["connect_failures"] >= 2, DEADLINE, "failed attempts", pace=d.proc
    )
    assert health(d)["connected"] is False
    assert d.get("/alive")[0] == 200
    broker.start()
    broker.wait_until(lambda: health(d)["connected"], DEADLINE, "a connection")
    broker.wait_until(lambda: held_state(broker), DEADLINE, "a state")
    assert "failed attempts" in d.wait_for("MQTT connected to")
    assert d.stop() == 0
    lines = [line for line in d.text().splitlines() if "unreachable" in line]
    assert len(lines) == 1, d.text()


def test_broker_restart_gets_everything_again(brokers, daemon, tmp_path):
    """The broker keeps nothing (no persistence): after its restart the daemon
    reconnects and sends the configs and the state again."""
    broker = brokers().start()
    d = daemon(*mqtt_args(broker, tmp_path))
    broker.wait_until(lambda: configs(broker) and held_state(broker), DEADLINE, "a first state")
    broker.stop()
    assert d.proc is not None
    broker.wait_until(lambda: not health(d)["connected"], DEADLINE, "the drop", pace=d.proc)
    assert d.get("/alive")[0] == 200
    broker.start()
    broker.wait_until(lambda: configs(broker) and held_state(broker), DEADLINE, "everything again")
    assert broker.retained(AVAILABILITY) == {AVAILABILITY: b"online"}
    assert health(d)["reconnects"] == 1
    assert d.stop() == 0
    assert len([line for line in d.text().splitlines() if " lost (" in line]) == 1, d.text()


def test_a_silent_broker_times_out_and_never_blocks(daemon, tmp_path):
    """A port that accepts connections (the kernel's backlog) but never answers:
    the CONNECT gets no CONNACK, the attempt times out and is retried; the
    daemon serves meanwhile and stops at once."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        d = daemon(
            "--mqtt",
            f"mqtt://127.0.0.1:{port}",
            "--mqtt-interval",
            "1",
            "--history-db",
            "none",
            "--state-dir",
            str(tmp_path / "state"),
        )
        assert d.proc is not None
        started = time.monotonic()
        while not health(d)["connect_failures"]:
            assert d.get("/alive")[0] == 200
            assert time.monotonic() - started < DEADLINE, d.text()
            try:
                d.proc.wait(0.2)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError(d.text())
        assert "CONNACK" in health(d)["last_error"]
        stopping = time.monotonic()
        assert d.stop() == 0
        assert time.monotonic() - stopping < 10
    assert len([line for line in d.text().splitlines() if "unreachable" in line]) == 1


def test_stop_while_the_broker_is_down(brokers, daemon, tmp_path):
    broker = brokers()  # never started
    d = daemon(*mqtt_args(broker, tmp_path))
    assert d.proc is not None
    broker.wait_until(lambda: health(d)["retrying"], DEADLINE, "a retry", pace=d.proc)
    stopping = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - stopping < 10


def test_wrong_password_one_clear_line_and_retries(brokers, daemon, tmp_path):
    broker = brokers(users={"pi": "right"}).start()
    d = daemon(
        *mqtt_args(broker, tmp_path, "--mqtt-user", "pi"),
        env={"PISTATSD_MQTT_PASSWORD": "wrong-horse"},
    )
    assert d.proc is not None
    broker.wait_until(lambda: health(d)["connect_failures"] >= 3, DEADLINE, "retries", pace=d.proc)
    assert health(d)["connected"] is False
    assert d.stop() == 0
    lines = [line for line in d.text().splitlines() if "refused the login" in line]
    assert len(lines) == 1, d.text()
    assert "not authorized" in lines[0] or "bad user name or password" in lines[0]
    assert "wrong-horse" not in d.text()


def test_password_login(brokers, daemon, tmp_path):
    broker = brokers(users={"pi": "right"}).start()
    secret = write(str(tmp_path / "pw"), b"right\n")
    d = daemon(*mqtt_args(broker, tmp_path, "--mqtt-user", "pi", "--mqtt-password-file", secret))
    broker.wait_until(
        lambda: held_state(broker, user=("pi", "right")), DEADLINE, "a state, logged in"
    )
    assert health(d)["connected"] is True


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, str]:
    ca_key, ca = make_ca()
    key, cert = make_leaf(ca_key, ca, "localhost")
    _, other_ca = make_ca()
    return {
        "ca": write(str(tmp_path / "ca.pem"), cert_pem(ca)),
        "other": write(str(tmp_path / "other.pem"), cert_pem(other_ca)),
        "cert": write(str(tmp_path / "cert.pem"), cert_pem(cert)),
        "key": write(str(tmp_path / "key.pem"), key_pem(key)),
    }


def test_tls_with_a_private_ca(brokers, daemon, tmp_path, pki):
    broker = brokers(tls=(pki["cert"], pki["key"])).start()
    d = daemon(*mqtt_args(broker, tmp_path, "--mqtt-cafile", pki["ca"]))
    broker.wait_until(lambda: held_state(broker, cafile=pki["ca"]), DEADLINE, "a state over TLS")
    assert health(d)["tls"] is True and health(d)["connected"] is True


def test_tls_refuses_an_unknown_ca(brokers, daemon, tmp_path, pki):
    broker = brokers(tls=(pki["cert"], pki["key"])).start()
    d = daemon(*mqtt_args(broker, tmp_path, "--mqtt-cafile", pki["other"]))
    assert d.proc is not None
    broker.wait_until(
        lambda: health(d)["connect_failures"] >= 2, DEADLINE, "refused handshakes", pace=d.proc
    )
    mqtt = health(d)
    assert mqtt["connected"] is False
    assert "certificate verify failed" in mqtt["last_error"], mqtt
    assert held_state(broker, cafile=pki["ca"]) is None


def test_tls_checks_the_host_name(brokers, daemon, tmp_path, pki):
    # Signed by the trusted CA, but for another name (and 127.0.0.1): "localhost" must not pass.
    ca_key, ca = make_ca()
    key, cert = make_leaf(ca_key, ca, "elsewhere.test")
    broker = brokers(
        tls=(
            write(str(tmp_path / "elsewhere.pem"), cert_pem(cert)),
            write(str(tmp_path / "elsewhere.key"), key_pem(key)),
        )
    ).start()
    cafile = write(str(tmp_path / "elsewhere-ca.pem"), cert_pem(ca))
    d = daemon(*mqtt_args(broker, tmp_path, "--mqtt-cafile", cafile))
    assert d.proc is not None
    broker.wait_until(
        lambda: health(d)["connect_failures"] >= 1, DEADLINE, "a refused name", pace=d.proc
    )
    mqtt = health(d)
    assert mqtt["connected"] is False
    assert "localhost" in mqtt["last_error"], mqtt


def test_deleted_sensor_removes_its_entity(brokers, daemon, tmp_path):
    broker = brokers().start()
    root = tmp_path / "root"
    root.mkdir()
    (root / "temp").write_text("21500\n")
    d = daemon(*mqtt_args(broker, tmp_path, "--sensor-root", str(root)))
    body = json.dumps({"name": "room", "path": str(root / "temp"), "scale": 0.001, "unit": "C"})
    status, _, _ = d.get(
        "/api/sensors", {"Content-Type": "application/json"}, "POST", body.encode()
    )
    assert status == 201

    def room_topic() -> str | None:
        return next((t for t, c in configs(broker).items() if c["name"] == "Sensor room"), None)

    topic = broker.wait_until(room_topic, DEADLINE, "the sensor's entity")
    config = configs(broker)[topic]
    assert config["unit_of_measurement"] == "°C"
    broker.wait_until(
        lambda: (held_state(broker) or {}).get("sensors", {}).get("room") == 21.5,
        DEADLINE,
        "the sensor's value",
    )
    assert d.get("/api/sensors/room", method="DELETE")[0] == 204
    broker.wait_until(
        lambda: topic not in broker.retained("homeassistant/#"), DEADLINE, "the entity removed"
    )
    assert "Sensor room" not in {c["name"] for c in configs(broker).values()}


def test_an_entity_gone_while_stopped_is_removed_at_the_next_start(brokers, daemon, tmp_path):
    broker = brokers().start()
    root = tmp_path / "root"
    root.mkdir()
    (root / "temp").write_text("21500\n")
    first = daemon(*mqtt_args(broker, tmp_path, "--sensor-root", str(root)))
    body = json.dumps({"name": "cellar", "path": str(root / "temp"), "unit": "C"}).encode()
    assert first.get("/api/sensors", {"Content-Type": "application/json"}, "POST", body)[0] == 201
    topic = broker.wait_until(
        lambda: next((t for t, c in configs(broker).items() if c["name"] == "Sensor cellar"), None),
        DEADLINE,
        "the sensor's entity",
    )
    assert first.stop() == 0
    assert topic in broker.retained("homeassistant/#")
    # Started again without that sensor (another state directory): the entity goes.
    second = daemon(*mqtt_args(broker, tmp_path, "--sensor-root", str(root), state="other"))
    broker.wait_until(
        lambda: topic not in broker.retained("homeassistant/#"), DEADLINE, "the stale entity gone"
    )
    assert "CPU" in {c["name"] for c in configs(broker).values()}
    assert health(second)["connected"] is True


def test_a_daemon_without_mqtt_does_not_import_the_library(tmp_path):
    code = (
        "import sys\n"
        "from pistatsd.tap import Options, makeService\n"
        "from twisted.internet.testing import MemoryReactorClock\n"
        "o = Options()\n"
        f"o.parseOptions(['--state-dir', {str(tmp_path)!r}, '--history-db', 'none'])\n"
        "makeService(o, MemoryReactorClock())\n"
        "print('mqtt' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert done.stdout.strip() == b"False", done.stderr.decode()


def test_an_alert_is_a_problem_binary_sensor_and_its_state_is_published(brokers, daemon, tmp_path):
    broker = brokers().start()
    root = tmp_path / "root"
    root.mkdir()
    (root / "level").write_text("10\n")
    config = tmp_path / "alerts.toml"
    config.write_text('[alerts.tank]\nseries = "sensors.tank"\nabove = 50\n')
    d = daemon(
        *mqtt_args(broker, tmp_path, "--sensor-root", str(root), "--sample-interval", "0.2"),
        "--config",
        str(config),
    )
    body = json.dumps({"name": "tank", "path": str(root / "level")}).encode()
    assert d.get("/api/sensors", {"Content-Type": "application/json"}, "POST", body)[0] == 201

    def tank_topic() -> str | None:
        return next((t for t, c in configs(broker).items() if c["name"] == "Alert tank"), None)

    topic = broker.wait_until(tank_topic, DEADLINE, "the alert's entity")
    entity = configs(broker)[topic]
    assert topic.startswith("homeassistant/binary_sensor/")
    assert entity["device_class"] == "problem"
    assert entity["state_topic"] == STATE
    broker.wait_until(
        lambda: (held_state(broker) or {}).get("alerts", {}).get("tank") == "ok",
        DEADLINE,
        "the alert's state, ok",
    )
    (root / "level").write_text("60\n")
    broker.wait_until(
        lambda: (held_state(broker) or {}).get("alerts", {}).get("tank") == "firing",
        DEADLINE,
        "the alert's state, firing",
    )
    assert d.stop() == 0
