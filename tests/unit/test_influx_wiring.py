"""C{influx_service} from a L{Config}: what it builds, and the pool it owns (no sockets)."""

from __future__ import annotations

import os

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import HTTPConnectionPool

from pistatsd.alerts.events import AlertChange
from pistatsd.config import Config
from pistatsd.errors import StartupError
from pistatsd.influx.alert_points import alert_listener
from pistatsd.influx.reporter import InfluxReporter
from pistatsd.influx.wiring import influx_parts, influx_service
from pistatsd.influx.writer import PrivateCAPolicy
from pistatsd.web.traffic import RequestTally
from tests.influxd import FakeInflux, FakeNetwork, capture_all_logs, make_pki
from tests.unit.test_influx_points import SNAPSHOT, FakeSampler, FakeSensors


class WiringTests(SynchronousTestCase):
    def config(self, **kw: object) -> Config:
        state = self.mktemp()
        defaults: dict[str, object] = {
            "influx": "http://127.0.0.1:8086",
            "state_dir": state,
            "report_interval": 10.0,
        }
        defaults.update(kw)
        return Config(**defaults)  # type: ignore[arg-type]

    def test_reports_the_daemon_points(self) -> None:
        reactor = MemoryReactorClock()
        reactor.advance(1_700_000_000)
        fake = FakeInflux()
        tally = RequestTally()
        reporter = influx_service(
            self.config(influx_user="u", influx_password="pw"),
            reactor,
            tally=tally,
            sampler=FakeSampler(SNAPSHOT),
            sensors=FakeSensors({"room": 20.5, "gone": None}),
            http=FakeNetwork(fake),
            wall=reactor.seconds,
        )
        self.assertIsInstance(reporter, InfluxReporter)
        reporter.startService()
        tally.observe("GET", "/alive", "2xx")
        tally.observe("GET", "/alive", "2xx")
        reactor.advance(10)
        self.assertEqual(
            fake.written,
            [
                "requests,request=GETs_per_minute,host=pi requests_number=2i 1700000010000",
                "http_requests,host=pi,method=GET,path=/alive,status=2xx count=2i 1700000010000",
                "system,host=pi cpu=12.5,memory_percent=37.0,temperature=48.3,load1=0.25,"
                "uptime=12345.6 1700000010000",
                "temp,host=pi,sensor=cpu_thermal temp=48.3 1700000010000",
                "sensors,host=pi,sensor=room value=20.5 1700000010000",
            ],
        )
        self.assertEqual(reporter.state()["url"], "http://127.0.0.1:8086")
        self.successResultOf(reporter.stopService())

    def test_v2_and_create_db(self) -> None:
        reactor = MemoryReactorClock()
        fake = FakeInflux()
        reporter = influx_service(
            self.config(influx_create_db=True),
            reactor,
            tally=RequestTally(),
            sampler=FakeSampler(SNAPSHOT),
            sensors=None,
            http=FakeNetwork(fake),
        )
        reporter.startService()
        [create] = fake.seen
        self.assertEqual(
            (create.path, create.body), ("/query", b"q=CREATE+DATABASE+%22math_server%22")
        )
        self.successResultOf(reporter.stopService())
        v2 = influx_service(
            self.config(influx_token="tok", influx_org="o", influx_create_db=True),
            reactor,
            tally=RequestTally(),
            sampler=FakeSampler(SNAPSHOT),
            sensors=None,
        )
        self.assertEqual(v2.state()["api"], "v2")

    def test_owns_one_pool_with_timeouts(self) -> None:
        reactor = MemoryReactorClock()
        config = self.config()
        reporter = influx_service(
            config, reactor, tally=RequestTally(), sampler=FakeSampler(SNAPSHOT), sensors=None
        )
        reporter.startService()
        pool = reporter._pool
        self.assertIsInstance(pool, HTTPConnectionPool)
        reactor.advance(10)
        [(host, port, _factory, timeout, _bind)] = reactor.tcpClients
        self.assertEqual((host, port, timeout), ("127.0.0.1", 8086, 10.0))
        # Never connected: the shutdown flush gives up after 5 s and spools.
        d = reporter.stopService()
        reactor.advance(4.9)
        self.assertNoResult(d)
        reactor.advance(0.1)
        self.successResultOf(d)
        self.assertIsNone(reporter._pool)
        spool = os.path.join(config.state_dir, "influx-spool.lp")
        with open(spool) as f:
            # two intervals: requests, system, temp
            self.assertEqual(len(f.read().splitlines()), 6)

    def test_the_pool_opens_and_closes_connections_without_a_log_line(self) -> None:
        events = capture_all_logs(self)
        reactor = MemoryReactorClock()
        reporter = influx_service(
            self.config(),
            reactor,
            tally=RequestTally(),
            sampler=FakeSampler(SNAPSHOT),
            sensors=None,
        )
        reporter.startService()
        reactor.advance(10)
        [(_host, _port, factory, _timeout, _bind)] = reactor.tcpClients
        # What a real connector does with the factory it is given, around a connection.
        factory.doStart()
        factory.doStop()
        self.assertEqual(
            [e for e in events if "factory" in str(e.get("log_format", ""))],
            [],
            "no Starting/Stopping factory lines",
        )
        d = reporter.stopService()
        reactor.advance(5)
        self.successResultOf(d)

    def test_cafile(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        pki = make_pki(directory)
        reporter = influx_service(
            self.config(influx="https://influx.example:8086", influx_cafile=pki.ca),
            MemoryReactorClock(),
            tally=RequestTally(),
            sampler=FakeSampler(SNAPSHOT),
            sensors=None,
        )
        self.assertIsInstance(reporter._tls_policy, PrivateCAPolicy)

    def test_unusable_cafile_stops_startup_naming_the_option(self) -> None:
        missing = os.path.join(self.mktemp(), "ca.pem")
        with self.assertRaises(StartupError) as caught:
            influx_service(
                self.config(influx="https://h", influx_cafile=missing),
                MemoryReactorClock(),
                tally=RequestTally(),
                sampler=FakeSampler(SNAPSHOT),
                sensors=None,
            )
        self.assertIn("--influx-cafile", str(caught.exception))
        self.assertIsInstance(caught.exception, SystemExit)


class AlertPointTests(SynchronousTestCase):
    """Alert changes go out as C{alerts} points through the reporter's own backlog."""

    def change(self) -> AlertChange:
        return AlertChange(
            name="hot",
            series="sensors.room",
            state="firing",
            previous="pending",
            time=1_700_000_001.5,
            value=35.0,
            severity="critical",
        )

    def test_a_change_is_written_at_once(self) -> None:
        reactor = MemoryReactorClock()
        reactor.advance(1_700_000_000)
        fake = FakeInflux()
        reporter = influx_service(
            Config(influx="http://127.0.0.1:8086", state_dir=self.mktemp()),
            reactor,
            tally=RequestTally(),
            sampler=FakeSampler(SNAPSHOT),
            sensors=FakeSensors({}),
            http=FakeNetwork(fake),
            wall=reactor.seconds,
        )
        reporter.startService()
        listener = alert_listener(reporter.enqueue, "pi")
        listener(self.change())
        self.assertEqual(
            fake.written,
            [
                'alerts,alert=hot,severity=critical,host=pi state="firing",level=2i,value=35.0 '
                "1700000001500"
            ],
        )
        self.successResultOf(reporter.stopService())

    def test_parts_on_and_off(self) -> None:
        tally, sampler, sensors = RequestTally(), FakeSampler(SNAPSHOT), FakeSensors({})
        on = influx_parts(
            Config(influx="http://127.0.0.1:8086", state_dir=self.mktemp()),
            MemoryReactorClock(),
            tally=tally,
            sampler=sampler,
            sensors=sensors,
        )
        self.assertIsNotNone(on.alert_listener)
        self.assertEqual(on.figures(), {"influx.dropped": 0.0})
        off = influx_parts(
            Config(state_dir=self.mktemp()),
            MemoryReactorClock(),
            tally=tally,
            sampler=sampler,
            sensors=sensors,
        )
        self.assertIsNone(off.alert_listener)
        self.assertEqual(off.figures(), {})
