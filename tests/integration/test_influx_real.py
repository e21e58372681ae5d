"""The real plugin against a real C{influxd}: counts arrive, survive outages and restarts.

Skipped when influxd is not installed, failed in CI (C{PISTATSD_REQUIRE_REAL=1}).
Every wait polls with a deadline (paced by blocking on the influxd process), never sleeps.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import Daemon
from tests.influxd import Influxd, make_pki, wait_until

pytestmark = pytest.mark.real

DEADLINE = 60.0
"""Generous: after an outage the reporter's backoff (1, 2, 4, ... s, with jitter) can
put the next try some 30 s away on a slow, loaded machine."""


@pytest.fixture
def influxd(tmp_path: Path) -> Iterator[Callable[..., Influxd]]:
    """Start influxd servers in temp dirs; all stopped at teardown."""
    started: list[Influxd] = []

    def start(**kw: Any) -> Influxd:
        root = tmp_path / f"influxd{len(started)}"
        root.mkdir()
        server = Influxd(str(root), **kw)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


class Client:
    """Requests to one daemon, counted: every one of them is in the report."""

    def __init__(self, d: Daemon) -> None:
        self.daemon = d
        self.made = 0

    def get(self, path: str = "/alive") -> tuple[int, dict[str, str], bytes]:
        self.made += 1
        return self.daemon.get(path)

    def many(self, n: int, path: str = "/alive") -> None:
        for _ in range(n):
            assert self.get(path)[0] == 200

    def health(self) -> dict[str, Any]:
        return json.loads(self.get("/health")[2])["influx"]

    def wait_until(self, check: Callable[[], Any], what: str) -> Any:
        """Poll C{check}, paced by the daemon (for when influxd is down)."""
        assert self.daemon.proc is not None
        return wait_until(check, DEADLINE, what, pace=self.daemon.proc, details=self.daemon.text)


def influx_args(server: Influxd, state: Path, *extra: str) -> list[str]:
    return [
        "--influx",
        server.url,
        "--report-interval",
        "1",
        "--state-dir",
        str(state),
        "--influx-create-db",
        *extra,
    ]


def wait_for_requests(server: Influxd, expected: int, d: Daemon) -> None:
    """Until C{sum(requests_number)} is exactly C{expected} (with a deadline)."""
    try:
        server.wait_until(
            lambda: server.sum_of("requests_number", "requests") == expected,
            DEADLINE,
            f"sum(requests_number) == {expected}",
        )
    except AssertionError as e:
        got = server.sum_of("requests_number", "requests")
        raise AssertionError(f"{e}\nsum is {got}\ndaemon output:\n{d.text()}") from None


def test_request_counts_arrive(influxd, daemon, tmp_path: Path) -> None:
    server = influxd()
    d = daemon(*influx_args(server, tmp_path / "state"))
    client = Client(d)
    client.many(25)
    client.many(5, "/stats")
    wait_for_requests(server, client.made, d)
    rows = server.values("SELECT sum(\"count\") FROM http_requests WHERE path = '/alive'")
    assert rows[0][1] == 25
    rows = server.values("SELECT last(memory_percent), last(uptime) FROM system")
    assert rows and rows[0][1] > 0 and rows[0][2] > 0
    # The whole machine, where this daemon's collectors report it (SPEC 11).
    snapshot = json.loads(client.get("/stats")[2])
    if snapshot.get("filesystems"):
        server.wait_until(
            lambda: server.values("SELECT used_percent FROM disk WHERE path = '/'"),
            DEADLINE,
            "the root file system in the disk measurement",
        )
    if snapshot.get("processes"):
        server.wait_until(
            lambda: server.values("SELECT last(total) FROM processes"), DEADLINE, "processes"
        )
    host = server.values('SHOW TAG VALUES FROM requests WITH KEY = "host"')
    assert host and host[0][1], host
    # InfluxDB can have a batch before the daemon has read its 204: poll.
    state = client.wait_until(
        lambda: (h := client.health())["last_success"] is not None and h, "a recorded success"
    )
    assert state["enabled"] is True and state["api"] == "v1"
    assert state["url"] == server.url
    assert state["dropped"] == 0
    # The extra /health request is reported too.
    wait_for_requests(server, client.made, d)
    assert d.stop() == 0
    assert not (tmp_path / "state" / "influx-spool.lp").exists()
    # The reporter's connections open and close without a log line each.
    assert "HTTP11ClientFactory" not in d.text(), d.text()


def test_an_influxd_outage_loses_nothing(influxd, daemon, tmp_path: Path) -> None:
    server = influxd()
    d = daemon(*influx_args(server, tmp_path / "state"))
    client = Client(d)
    client.many(10)
    wait_for_requests(server, client.made, d)
    server.stop()
    client.many(7)
    client.wait_until(lambda: client.health()["retrying"], "the daemon noticing the outage")
    client.many(3)
    server.start()
    wait_for_requests(server, client.made, d)
    # InfluxDB can have a batch before the daemon has read its 204: poll.
    state = client.wait_until(
        lambda: (h := client.health())["last_error"] is None and h, "the recovery in /health"
    )
    assert state["dropped"] == 0
    assert state["last_failure"] and state["last_failure_time"], state  # what happened
    assert "pw" not in json.dumps(state)


def test_a_daemon_restart_during_the_outage_spools_and_replays(
    influxd, daemon, tmp_path: Path
) -> None:
    server = influxd()
    state_dir = tmp_path / "state"
    spool = state_dir / "influx-spool.lp"
    first = daemon(*influx_args(server, state_dir))
    client = Client(first)
    client.many(4)
    wait_for_requests(server, client.made, first)
    server.stop()
    client.many(11)
    assert first.stop() == 0
    assert "spooled" in first.text()
    spooled = spool.read_text().splitlines()
    counted = sum(
        int(m.group(1))
        for line in spooled
        if (m := re.match(r"requests,.* requests_number=(\d+)i \d+$", line))
    )
    assert counted == 11, spooled
    server.start()
    second = daemon(*influx_args(server, state_dir))
    wait_for_requests(server, client.made, second)
    server.wait_until(lambda: not spool.exists(), DEADLINE, "the spool file removed")
    assert second.stop() == 0


def test_basic_auth(influxd, daemon, tmp_path: Path) -> None:
    server = influxd(auth=True)
    server.query("CREATE USER admin WITH PASSWORD 'pw-admin-7' WITH ALL PRIVILEGES")
    server.auth = ("admin", "pw-admin-7")
    d = daemon(
        *influx_args(server, tmp_path / "state", "--influx-user", "admin"),
        env={"PISTATSD_INFLUX_PASSWORD": "pw-admin-7"},
    )
    client = Client(d)
    client.many(6)
    wait_for_requests(server, client.made, d)
    assert "pw-admin-7" not in json.dumps(client.health())
    # A wrong password: writes are refused, dropped and counted, never retried forever.
    wrong = daemon(
        *influx_args(server, tmp_path / "state2", "--influx-user", "admin"),
        env={"PISTATSD_INFLUX_PASSWORD": "wrong-pw-9"},
    )
    wrong_client = Client(wrong)
    health = wrong_client.wait_until(
        lambda: (h := wrong_client.health())["dropped"] > 0 and h, "refused writes"
    )
    assert "401" in health["last_error"] or "403" in health["last_error"], health
    assert health["retrying"] is False
    assert wrong.stop() == 0
    assert d.stop() == 0
    for text in (d.text(), wrong.text(), json.dumps(health)):
        assert "pw-admin-7" not in text and "wrong-pw-9" not in text


def test_https_certificates_are_verified(influxd, daemon, tmp_path: Path) -> None:
    pki_dir = tmp_path / "pki"
    pki_dir.mkdir()
    pki = make_pki(str(pki_dir))
    server = influxd(tls=pki)
    # Not trusted by the system: refused, kept for later, nothing written.
    untrusted = daemon(*influx_args(server, tmp_path / "state1"))
    untrusted_client = Client(untrusted)
    health = untrusted_client.wait_until(
        lambda: (h := untrusted_client.health())["last_error"] and h, "a TLS failure"
    )
    assert health["retrying"] is True and health["last_success"] is None, health
    assert "certificate verify failed" in health["last_error"], health
    assert untrusted.stop() == 0
    # With the private CA: delivered, and the spooled points of the first daemon too.
    trusted = daemon(*influx_args(server, tmp_path / "state1", "--influx-cafile", pki.ca))
    client = Client(trusted)
    client.many(5)
    wait_for_requests(server, untrusted_client.made + client.made, trusted)


def test_a_real_413_splits_batches(influxd, daemon, tmp_path: Path) -> None:
    """A server with a small body limit: a backlog is sent in halves until it fits."""
    server = influxd(max_body_size=600)
    d = daemon(*influx_args(server, tmp_path / "state"))
    client = Client(d)
    client.many(3)
    wait_for_requests(server, client.made, d)
    server.stop()
    client.many(9)
    client.wait_until(lambda: client.health()["queued"] >= 12, "a backlog of a few batches")
    server.start()
    wait_for_requests(server, client.made, d)
    assert client.health()["dropped"] == 0
    assert d.stop() == 0
    assert "HTTP 413" in d.text() and "sending smaller batches" in d.text(), d.text()


def test_escaping_round_trips(influxd, tmp_path: Path) -> None:
    """Nasty names written by the line-protocol module read back unchanged."""
    from pistatsd.influx.lineprotocol import Point

    server = influxd()
    server.query('CREATE DATABASE "esc"')
    names = ["a b", "c,d", "e=f", 'g"h', "x\\y", "é ü"]
    lines = [
        Point(
            "sensors", (("host", "pi"), ("sensor", name)), (("value", float(i)),), 1000 + i
        ).line()
        for i, name in enumerate(names)
    ]
    lines.append(Point("notes", (("host", "pi"),), (("text", 'say "hi" \\o/'),), 5).line())
    status, body = server.request(
        "POST", "/write?db=esc&precision=ms", ("\n".join(lines) + "\n").encode()
    )
    assert status == 204, body
    tags = [
        row[1] for row in server.values('SHOW TAG VALUES FROM sensors WITH KEY = "sensor"', "esc")
    ]
    assert sorted(tags) == sorted(names)
    [[_, text]] = server.values("SELECT text FROM notes", "esc")
    assert text == 'say "hi" \\o/'
    assert os.path.exists(server.config_path)


def test_machine_points_read_back(influxd) -> None:
    """The whole machine's points, as Telegraf names them, are taken and read back whole."""
    from pistatsd.influx.machine_points import machine_points
    from tests.machine_snapshots import PI, with_odd_mount

    server = influxd()
    server.query('CREATE DATABASE "machine"')
    lines = [point.line() for point in machine_points(with_odd_mount(), "pi", 1000)]
    lines += [point.line() for point in machine_points(PI, "pi", 2000)]
    status, body = server.request(
        "POST", "/write?db=machine&precision=ms", ("\n".join(lines) + "\n").encode()
    )
    assert status == 204, body
    rows = server.values("SELECT used_percent FROM disk WHERE path = '/'", "machine")
    assert [row[1] for row in rows] == [93.1, 93.1]
    paths = server.values('SHOW TAG VALUES FROM disk WITH KEY = "path"', "machine")
    assert sorted(row[1] for row in paths) == [
        "/",
        "/boot/firmware",
        "/media/My Photos",
        "/mnt/caf\\udce9",
    ]
    modes = server.values("SELECT used, mode FROM disk WHERE path = '/boot/firmware'", "machine")
    assert [row[2] for row in modes] == ["ro", "ro"], modes
    [[_, received]] = server.values(
        "SELECT last(bytes_recv) FROM net WHERE interface = 'eth0'", "machine"
    )
    assert received == 123000000
    interfaces = server.values('SHOW TAG VALUES FROM net WITH KEY = "interface"', "machine")
    assert 'br-"lan\\1' in [row[1] for row in interfaces]
    [[_, written]] = server.values(
        "SELECT last(write_bytes) FROM diskio WHERE \"name\" = 'mmcblk0'", "machine"
    )
    assert written == 52613349376
    [[_, zombies]] = server.values("SELECT last(zombies) FROM processes", "machine")
    assert zombies == 1
    [[_, temp]] = server.values("SELECT last(temp) FROM temp WHERE sensor = 'rp1_adc'", "machine")
    assert temp == 41.0
    [[_, under_voltage]] = server.values("SELECT last(under_voltage) FROM throttled", "machine")
    assert under_voltage is True
