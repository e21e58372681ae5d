"""Dates come from the wall clock, timers and durations from the reactor's clock.

In the daemon the reactor's clock is monotonic (L{pistatsd.clock}) and the wall
clock is C{time.time}; here both are fakes, set independently: the wall clock
runs with the reactor's L{Clock} plus an offset that the tests step back an hour
or forward a day, as C{date -s} or NTP would.  Every data timestamp must follow
the wall clock; every schedule, window, deadline and uptime must ignore it.
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http import datetimeToLogString
from twisted.web.resource import Resource

from pistatsd.influx.writer import post
from pistatsd.sampler import Sampler
from pistatsd.status import DaemonStatus
from pistatsd.web.accesslog import WallClockLogFormatter
from pistatsd.web.pages import AliveResource, ZzzPage
from pistatsd.web.site import PistatsdSite
from pistatsd.ws.broadcast import Broadcaster
from tests.influxd import FakeInflux, FakeNetwork, Reply
from tests.support import request
from tests.unit import test_influx_reporter as reporter_tests
from tests.unit.test_sysinfo import FakePsutil, cpu, empty_sysfs
from tests.unit.test_ws_memory import SNAPSHOT, FakeSampler

#: A wall clock far from the Clock's zero, so the two can never be confused.
EPOCH = 1_700_000_000.0
HOUR = 3600.0
DAY = 86400.0


class Wall:
    """A wall clock that runs with C{clock} and can be stepped like C{date -s}."""

    def __init__(self, clock: Clock, start: float = EPOCH) -> None:
        self.clock = clock
        self.offset = start - clock.seconds()

    def __call__(self) -> float:
        return self.clock.seconds() + self.offset

    def step(self, seconds: float) -> None:
        self.offset += seconds


class SamplerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.wall = Wall(self.clock)
        self.ps = FakePsutil()
        self.sampler = Sampler(
            self.clock,
            interval=1.0,
            collector=_collector(self, self.ps),
            wall=self.wall,
        )
        self.sampler.startService()
        self.addCleanup(self.sampler.stopService)

    def timestamps(self) -> list[float]:
        return [s["timestamp"] for s in self.sampler.history()]

    def test_snapshots_are_stamped_by_the_wall_clock(self) -> None:
        self.clock.pump([1.0] * 2)
        self.assertEqual(self.timestamps(), [EPOCH, EPOCH + 1, EPOCH + 2])
        self.assertEqual(json.loads(self.sampler.latest_json)["timestamp"], EPOCH + 2)

    def test_a_stepped_wall_clock_neither_stops_nor_bursts_sampling(self) -> None:
        self.clock.pump([1.0] * 2)
        self.wall.step(-HOUR)
        self.clock.pump([1.0] * 2)
        self.wall.step(DAY)
        self.clock.pump([1.0] * 2)
        self.assertEqual(
            self.timestamps(),
            [
                EPOCH,
                EPOCH + 1,
                EPOCH + 2,
                EPOCH + 3 - HOUR,
                EPOCH + 4 - HOUR,
                EPOCH + 5 - HOUR + DAY,
                EPOCH + 6 - HOUR + DAY,
            ],
        )
        # CPU windows are clock time: one interval each, never -3599 s or a day.
        self.assertEqual({s["cpu"]["interval"] for s in self.sampler.history()[1:]}, {1.0})

    def test_history_reach_is_clock_time(self) -> None:
        """C{?seconds=} means the last seconds of the daemon's life, whatever the date says."""
        self.clock.pump([1.0] * 5)
        self.wall.step(-HOUR)
        self.clock.pump([1.0] * 2)
        self.assertEqual(len(self.sampler.history(2.5)), 3)
        self.wall.step(DAY)
        self.assertEqual(len(self.sampler.history(2.5)), 3)
        self.assertEqual(len(self.sampler.history(100)), 8)

    def test_measurement_window_is_clock_time_its_end_a_date(self) -> None:
        measured = self.sampler.measure_cpu(2.0)
        self.ps.total = cpu(user=130, system=60, idle=850, iowait=60)
        self.clock.advance(1.0)
        self.wall.step(-HOUR)
        self.clock.advance(1.0)
        result = self.successResultOf(measured)
        self.assertEqual(result["cpu"]["interval"], 2.0)
        self.assertEqual(result["timestamp"], EPOCH + 2 - HOUR)


def _collector(case: SynchronousTestCase, ps: FakePsutil) -> Any:
    from pistatsd.sysinfo import SystemCollector

    return SystemCollector(psutil=ps, sys_root=empty_sysfs(case), hostname="pi")


class FakeClient:
    """What the broadcaster needs of a client protocol."""

    ws_id = "0" * 32
    peer = "tcp:127.0.0.1:1"

    def __init__(self) -> None:
        self.paused_since: float | None = None
        self.messages: list[dict[str, Any]] = []
        self.dropped = False

    def sendMessage(self, payload: bytes) -> None:
        self.messages.append(json.loads(payload))

    def send_prepared(self, prepared: Any) -> None:
        frame = prepared.payloadHybi  # one unmasked frame: the JSON follows the header
        self.messages.append(json.loads(frame[frame.index(b"{") :]))

    def dropConnection(self, abort: bool = False) -> None:
        self.dropped = True


class BroadcastTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.wall = Wall(self.clock)
        self.broadcaster = Broadcaster(
            FakeSampler(self.clock), self.clock, 1.0, stuck_after=5.0, wall=self.wall
        )  # type: ignore[arg-type]
        self.client = FakeClient()
        self.broadcaster.join(self.client)  # type: ignore[arg-type]
        self.addCleanup(self.broadcaster.leave, self.client)  # type: ignore[arg-type]

    def test_sent_is_a_date_ticks_keep_the_clock(self) -> None:
        self.clock.advance(1.0)
        self.wall.step(-HOUR)
        self.clock.advance(1.0)
        self.wall.step(DAY)
        self.clock.advance(1.0)
        hello, *ticks = self.client.messages
        self.assertEqual(hello["sent"], EPOCH)
        self.assertEqual(
            [t["sent"] for t in ticks], [EPOCH + 1, EPOCH + 2 - HOUR, EPOCH + 3 - HOUR + DAY]
        )
        self.assertEqual(ticks[0]["timestamp"], SNAPSHOT["timestamp"])

    def test_stuck_client_is_timed_on_the_clock(self) -> None:
        self.client.paused_since = self.clock.seconds()
        self.wall.step(DAY)
        self.clock.pump([1.0] * 4)
        self.assertFalse(self.client.dropped, "a day of wall clock is not 5 s of stuck")
        self.clock.advance(1.0)
        self.assertTrue(self.client.dropped)


class StatusTests(SynchronousTestCase):
    def test_started_is_a_date_uptime_is_clock_time(self) -> None:
        clock = Clock()
        clock.advance(7)
        wall = Wall(clock)
        status = DaemonStatus(clock=clock, wall=wall)
        status.mark_started()
        clock.advance(10)
        wall.step(-HOUR)
        clock.advance(5)
        health = status.health()
        self.assertEqual(health["started"], EPOCH)
        self.assertEqual(health["uptime"], 15)
        wall.step(DAY)
        self.assertEqual(status.uptime(), 15)


class ReporterTests(reporter_tests.ReporterTestCase):
    """Point timestamps and C{last_success} are dates; the queue's ages are clock time."""

    def make_stepped(self) -> Wall:
        self.make(start=False, wall=lambda: self.wall())
        self.wall = Wall(self.clock, start=EPOCH + 5 * DAY)
        self.reporter.startService()
        self.addCleanup(self.stop_if_running)
        return self.wall

    def test_points_and_last_success_follow_the_wall_clock(self) -> None:
        wall = self.make_stepped()
        self.tick()
        wall.step(-HOUR)
        self.tick()
        stamps = [int(line.rsplit(" ", 1)[1]) for line in self.fake.written]
        first = int((EPOCH + 5 * DAY + reporter_tests.INTERVAL) * 1000)
        self.assertEqual(
            stamps, [first, first + int((reporter_tests.INTERVAL - HOUR) * 1000)], "ms"
        )
        self.assertEqual(self.reporter.state()["last_success"], wall())

    def test_points_move_to_the_spool_after_clock_time(self) -> None:
        wall = self.make_stepped()
        self.network.refusing = True
        self.tick()
        wall.step(DAY)  # a day of wall clock: the points have not waited a minute
        self.tick()
        self.assertEqual(self.reporter.state()["queued"], 2)
        self.assertFalse(os.path.exists(self.spool_path))
        wall.step(-DAY - HOUR)
        self.tick(4)  # the oldest has waited 50 s of clock time, though the date went back
        self.assertFalse(os.path.exists(self.spool_path))
        self.tick()  # 60 s
        self.assertEqual(reporter_tests.numbers(self.spooled_lines()), list(range(7)))


class RetryAfterDateTests(SynchronousTestCase):
    """An HTTP-date C{Retry-After} is a date: it is compared with the wall clock."""

    def test_http_date_against_the_wall_clock(self) -> None:
        fake = FakeInflux()
        fake.script.append(Reply(503, b"", {"Retry-After": "Tue, 14 Nov 2023 22:14:00 GMT"}))
        clock = Clock()  # near zero: no date at all
        d = post(
            FakeNetwork(fake),
            clock,
            "http://influx:8086/write",
            b"",
            {},
            10.0,
            wall=lambda: EPOCH - 60,
        )
        self.assertEqual(self.successResultOf(d).retry_after, 100.0)


class PagesTests(SynchronousTestCase):
    def test_zzz_page_dates_from_the_wall_clock(self) -> None:
        root = Resource()
        root.putChild(b"a.zzz", ZzzPage(wall=lambda: EPOCH))
        site = PistatsdSite(root, reactor=Clock())
        self.assertIn(b"on day 318 in 2023", request(site, "GET", "/a.zzz").body)

    def test_access_log_dates_from_the_wall_clock(self) -> None:
        clock = Clock()  # the reactor's idea of the date: 1970
        root = Resource()
        root.putChild(b"a", AliveResource())
        path = self.mktemp()
        site = PistatsdSite(root, reactor=clock, access_log=path, wall=lambda: EPOCH)
        site.startFactory()
        request(site, "GET", "/a")
        site.stopFactory()
        with open(path) as f:
            line = f.read()
        self.assertIn(datetimeToLogString(EPOCH), line)
        self.assertNotIn("1970", line)

    def test_access_log_date_formatted_once_a_second(self) -> None:
        wall = [EPOCH]
        formatter = WallClockLogFormatter(lambda: wall[0], lambda date, request: date)
        first = formatter("ignored", None)  # type: ignore[arg-type]
        wall[0] += 0.5
        self.assertIs(formatter("ignored", None), first)  # type: ignore[arg-type]
        wall[0] -= HOUR
        self.assertEqual(formatter("ignored", None), datetimeToLogString(EPOCH - HOUR))  # type: ignore[arg-type]
