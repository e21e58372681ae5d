"""The reporter on a Clock against an in-memory InfluxDB.

Every kind of answer, backoff timing, the bounds, the spool and shutdown.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from pistatsd.influx.lineprotocol import Point
from pistatsd.influx.reporter import InfluxReporter
from pistatsd.influx.spool import Spool
from pistatsd.influx.writer import InfluxTarget
from tests.influxd import FakeInflux, FakeNetwork, Reply, Seen, capture_all_logs, error, rendered

START = 1_700_000_000.0
INTERVAL = 10.0


class Counting:
    """A point source: C{per_tick} points per call, numbered, so order is visible."""

    host = "pi"

    def __init__(self, per_tick: int = 1) -> None:
        self.per_tick = per_tick
        self.n = 0
        self.broken = False

    def __call__(self, timestamp: int) -> list[Point]:
        if self.broken:
            raise ZeroDivisionError("broken point source")
        points = []
        for _ in range(self.per_tick):
            points.append(Point("t", (("host", "pi"),), (("n", self.n),), timestamp))
            self.n += 1
        return points


def numbers(lines: list[str]) -> list[int]:
    """The C{n} of each C{t} line."""
    return [int(line.split("n=")[1].split("i")[0]) for line in lines if line.startswith("t,")]


def sequence(*values: float) -> Callable[[], float]:
    """A random source returning C{values} in turn (then the last one forever)."""
    it: Iterator[float] = iter(values)
    last = [values[-1]]

    def next_value() -> float:
        last[0] = next(it, last[0])
        return last[0]

    return next_value


class ReporterTestCase(SynchronousTestCase):
    """A started reporter (C{self.reporter}) on C{self.clock}, talking to C{self.fake}."""

    def make(
        self,
        *,
        per_tick: int = 1,
        target: InfluxTarget | None = None,
        spool: bool = True,
        start: bool = True,
        **kw: Any,
    ) -> InfluxReporter:
        from twisted.internet.task import Clock

        self.clock = Clock()
        self.clock.advance(START)
        self.fake = FakeInflux()
        self.network = FakeNetwork(self.fake)
        self.points = Counting(per_tick)
        self.spool_path = os.path.join(self.mktemp(), "state", "influx-spool.lp")
        kw.setdefault("random", lambda: 1.0)
        kw.setdefault("wall", self.clock.seconds)
        self.reporter = InfluxReporter(
            target=target or InfluxTarget.build("http://influx:8086", user="u", password="pw"),
            clock=self.clock,
            points=self.points,
            interval=INTERVAL,
            spool=Spool(self.spool_path) if spool else None,
            http=self.network,
            **kw,
        )
        if start:
            self.reporter.startService()
            self.addCleanup(self.stop_if_running)
        return self.reporter

    def stop_if_running(self) -> None:
        if self.reporter.running:
            d = self.reporter.stopService()
            self.clock.advance(5)
            self.successResultOf(d)

    def tick(self, n: int = 1) -> None:
        """C{n} report intervals, a second at a time (every timer fires on time)."""
        self.clock.pump([1.0] * int(INTERVAL * n))

    def pending_delays(self) -> list[float]:
        """Seconds from now until each scheduled call other than the report loop."""
        now = self.clock.seconds()
        loop = self.reporter._loop
        return sorted(
            call.getTime() - now
            for call in self.clock.getDelayedCalls()
            if loop is None or call.func != loop  # type: ignore[attr-defined]
        )

    def spooled_lines(self) -> list[str]:
        with open(self.spool_path) as f:
            return f.read().splitlines()


class WritingTests(ReporterTestCase):
    def test_one_batch_per_interval_v1(self) -> None:
        self.make(per_tick=3)
        self.assertEqual(self.fake.seen, [])
        self.tick()
        [seen] = self.fake.seen
        self.assertEqual(seen.path, "/write")
        self.assertEqual(seen.args, {"db": "math_server", "precision": "ms"})
        self.assertEqual(seen.headers["authorization"], "Basic dTpwdw==")
        self.assertEqual(seen.headers["content-type"], "text/plain; charset=utf-8")
        self.assertEqual(seen.lines, [f"t,host=pi n={i}i 1700000010000" for i in range(3)])
        state = self.reporter.state()
        self.assertEqual(
            state,
            {
                "enabled": True,
                "url": "http://influx:8086",
                "api": "v1",
                "last_success": START + INTERVAL,
                "last_error": None,
                "last_failure": None,
                "last_failure_time": None,
                "queued": 0,
                "spooled": 0,
                "dropped": 0,
                "retrying": False,
            },
        )
        self.tick(2)
        self.assertEqual(len(self.fake.writes), 3)

    def test_v2_with_a_token(self) -> None:
        target = InfluxTarget.build("http://influx:8086", token="tok-abc", org="o", bucket="b")
        self.make(target=target)
        self.tick()
        [seen] = self.fake.seen
        self.assertEqual(seen.path, "/api/v2/write")
        self.assertEqual(seen.args, {"org": "o", "bucket": "b", "precision": "ms"})
        self.assertEqual(seen.headers["authorization"], "Token tok-abc")
        self.assertEqual(self.reporter.state()["api"], "v2")

    def test_timeouts_and_reactor_are_explicit(self) -> None:
        self.make()
        self.tick()
        call = self.network.calls[0]
        self.assertEqual(call["timeout"], 10.0)
        self.assertIs(call["reactor"], self.clock)

    def test_batches_are_bounded(self) -> None:
        self.make(per_tick=12, batch_size=5)
        self.tick()
        self.assertEqual([len(s.lines) for s in self.fake.writes], [5, 5, 2])
        self.assertEqual(numbers(self.fake.written), list(range(12)))

    def test_a_failing_point_source_never_stops_the_loop(self) -> None:
        self.make()
        self.points.broken = True
        self.tick(2)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)
        self.points.broken = False
        self.tick()
        self.assertEqual(numbers(self.fake.written), [0])


class RejectionTests(ReporterTestCase):
    def test_400_field_type_conflict_is_dropped_counted_and_logged_once(self) -> None:
        events = capture_all_logs(self)
        self.make(per_tick=3)
        self.fake.default = error(
            400,
            'partial write: field type conflict: input field "n" on measurement "t" is type '
            "integer, already exists as type float dropped=1",
        )
        self.tick(2)
        self.assertEqual(len(self.fake.writes), 2, "not retried")
        self.assertEqual(self.reporter.state()["dropped"], 2, "InfluxDB's own count")
        self.assertIn("field type conflict", self.reporter.state()["last_error"])
        warnings = [e for e in events if "field type conflict" in rendered([e])]
        self.assertEqual(len(warnings), 1, "once per episode")
        self.assertEqual(self.pending_delays(), [], "no retry scheduled")
        # Back to normal: the drop count itself is written.
        self.fake.default = Reply(204)
        self.tick()
        drops = [line for line in self.fake.written if line.startswith("pistatsd_reporter,")]
        self.assertEqual(len(drops), 1)
        self.assertIn("dropped=2i", drops[0])
        self.assertIn("rejected=2i", drops[0])
        self.assertTrue(any("accepts writes again" in rendered([e]) for e in events))

    def test_401_drops_and_logs_the_server_message(self) -> None:
        events = capture_all_logs(self)
        self.make(per_tick=2)
        self.fake.default = error(401, "authorization failed")
        self.tick(3)
        self.assertEqual(len(self.fake.writes), 3)
        state = self.reporter.state()
        self.assertEqual(state["dropped"], 6)
        self.assertEqual(state["last_error"], "HTTP 401: authorization failed")
        self.assertFalse(state["retrying"])
        self.assertEqual(sum("authorization failed" in rendered([e]) for e in events), 1)

    def test_403(self) -> None:
        self.make()
        self.fake.default = error(403, "forbidden")
        self.tick()
        self.assertEqual(self.reporter.rejected, 1)

    def test_404_database_not_found_is_dropped(self) -> None:
        self.make()
        self.fake.default = error(404, 'database not found: "math_server"')
        self.tick(2)
        self.assertEqual(self.reporter.rejected, 2)
        self.assertEqual([s.path for s in self.fake.seen], ["/write", "/write"])

    def test_404_with_create_db_recreates_and_keeps_the_points(self) -> None:
        self.make(create_database=True)
        self.assertEqual(self.fake.seen[0].path, "/query")
        self.fake.script.append(error(404, 'database not found: "math_server"'))
        self.tick()
        self.assertEqual(self.reporter.rejected, 0)
        self.clock.advance(1)  # the backoff
        self.assertEqual([s.path for s in self.fake.seen], ["/query", "/write", "/query", "/write"])
        self.assertEqual(numbers(self.fake.written), [0])

    def test_413_halves_the_batch_until_it_fits(self) -> None:
        self.make(per_tick=5)
        self.fake.max_lines = 2
        self.tick()
        self.assertEqual([len(s.lines) for s in self.fake.writes], [5, 2, 2, 1])
        self.assertEqual(numbers(self.fake.written), [0, 1, 2, 3, 4])
        self.assertEqual(self.reporter.dropped, 0)

    def test_a_single_point_too_large_is_dropped_and_counted(self) -> None:
        self.make(per_tick=3)
        self.fake.max_lines = 0
        self.tick()
        self.assertEqual([len(s.lines) for s in self.fake.writes], [3, 1, 1, 1])
        self.assertEqual(self.reporter.dropped, 3)
        self.assertEqual(self.reporter.state()["last_error"], "HTTP 413: Request Entity Too Large")


class RetryTests(ReporterTestCase):
    def test_500_retries_with_exponential_backoff_and_jitter(self) -> None:
        self.make(random=sequence(0.0, 1.0, 0.5, 0.0), max_backoff=8.0)
        self.fake.default = error(500, "engine failure")
        self.tick()
        delays = []
        for _ in range(6):
            [delay] = self.pending_delays()
            delays.append(delay)
            self.clock.advance(delay)
        # base 1, 2, 4, 8, 8, 8 (capped); jitter keeps 50..100% of it.
        self.assertEqual(delays, [0.5, 2.0, 3.0, 4.0, 4.0, 4.0])
        self.assertEqual(len(self.fake.writes), 7)
        self.assertTrue(self.reporter.state()["retrying"])
        self.fake.default = Reply(204)
        self.clock.advance(self.pending_delays()[0])
        self.assertFalse(self.reporter.state()["retrying"])
        self.assertEqual(numbers(self.fake.written), list(range(self.points.n)))

    def test_429_honours_retry_after(self) -> None:
        self.make()
        self.fake.script.append(error(429, "slow down", **{"Retry-After": "30"}))
        self.tick()
        self.assertEqual(self.pending_delays(), [30.0])
        self.clock.advance(29.5)  # ticks on the way queue points, but nothing is sent
        self.assertEqual(len(self.fake.writes), 1)
        self.assertGreater(self.reporter.state()["queued"], 1)
        self.clock.advance(0.5)
        self.assertEqual(numbers(self.fake.written), list(range(self.points.n)))

    def test_503_retry_after_longer_than_the_backoff(self) -> None:
        self.make()
        self.fake.script.append(Reply(503, b"", {"Retry-After": "7"}))
        self.tick()
        self.assertEqual(self.pending_delays(), [7.0])

    def test_timeout_is_retried(self) -> None:
        self.make()
        self.fake.hang = True
        self.tick()
        self.assertEqual(len(self.fake.writes), 1)
        self.clock.advance(10)
        state = self.reporter.state()
        self.assertEqual(state["last_error"], "no answer within 10 s")
        self.assertTrue(state["retrying"])
        self.fake.hang = False
        self.clock.advance(self.pending_delays()[0])
        self.assertEqual(numbers(self.fake.written), list(range(self.points.n)))

    def test_connection_refused_is_retried(self) -> None:
        events = capture_all_logs(self)
        self.make(max_backoff=0.5)  # the retry comes before the next tick
        self.network.refusing = True
        self.tick(3)
        state = self.reporter.state()
        self.assertEqual(state["last_error"], "connection refused")
        self.assertTrue(state["retrying"])
        self.assertEqual(state["queued"], 3)
        self.assertEqual(sum("connection refused" in rendered([e]) for e in events), 1)
        self.network.refusing = False
        self.clock.advance(self.pending_delays()[0])
        self.assertEqual(numbers(self.fake.written), [0, 1, 2])
        self.assertFalse(self.reporter.state()["retrying"])
        self.assertEqual(self.reporter.state()["queued"], 0)


class HealthTests(ReporterTestCase):
    def test_last_error_is_cleared_once_a_write_succeeds_the_failure_is_kept(self) -> None:
        self.make()
        self.fake.script.append(error(500, "engine failure"))
        self.tick()
        failed_at = self.clock.seconds()
        state = self.reporter.state()
        self.assertEqual(state["last_error"], "HTTP 500: engine failure")
        self.assertEqual(state["last_failure"], "HTTP 500: engine failure")
        self.assertEqual(state["last_failure_time"], failed_at)
        self.assertIsNone(state["last_success"])
        self.clock.advance(self.pending_delays()[0])
        state = self.reporter.state()
        self.assertEqual(numbers(self.fake.written), [0], "delivered on the retry")
        self.assertIsNone(state["last_error"], "recovered: no current error")
        self.assertEqual(state["last_success"], self.clock.seconds())
        self.assertEqual(state["last_failure"], "HTTP 500: engine failure")
        self.assertEqual(state["last_failure_time"], failed_at)
        self.assertFalse(state["retrying"])
        json.dumps(state)  # /health serialises it as is

    def test_a_rejection_stays_the_current_error_until_a_write_succeeds(self) -> None:
        self.make()
        self.fake.script.append(error(401, "authorization failed"))
        self.tick()
        self.assertEqual(self.reporter.state()["last_error"], "HTTP 401: authorization failed")
        self.tick()
        state = self.reporter.state()
        self.assertIsNone(state["last_error"])
        self.assertEqual(state["last_failure"], "HTTP 401: authorization failed")
        self.assertEqual(state["last_failure_time"], START + INTERVAL)


class BoundsTests(ReporterTestCase):
    def test_beyond_the_bound_the_oldest_are_dropped_and_reported_after_recovery(self) -> None:
        events = capture_all_logs(self)
        self.make(per_tick=3, queue_size=5, spool=False, max_backoff=0.5)
        self.network.refusing = True
        self.tick(3)
        state = self.reporter.state()
        self.assertEqual((state["queued"], state["dropped"]), (5, 4))
        full = [e for e in events if "queue full" in rendered([e])]
        self.assertEqual(len(full), 1, "one line when dropping starts")
        self.network.refusing = False
        self.clock.advance(self.pending_delays()[0])
        self.assertEqual(numbers(self.fake.written), [4, 5, 6, 7, 8])
        [drops] = [line for line in self.fake.written if line.startswith("pistatsd_reporter,")]
        self.assertTrue(drops.startswith("pistatsd_reporter,host=pi dropped=4i,"), drops)
        self.assertIn("overflow=4i", drops)
        ended = [e for e in events if "no longer full" in rendered([e])]
        self.assertEqual(len(ended), 1, "one summary line when it ends")
        self.assertIn("4", rendered(ended))

    def test_points_that_waited_a_minute_go_to_the_spool(self) -> None:
        self.make(per_tick=2)
        self.network.refusing = True
        self.tick(6)  # the first points have waited 50 s
        self.assertFalse(os.path.exists(self.spool_path))
        self.tick()  # 60 s
        spooled = numbers(self.spooled_lines())
        self.assertEqual(spooled, list(range(len(spooled))), "the oldest, in order")
        self.assertGreaterEqual(len(spooled), 12)
        state = self.reporter.state()
        self.assertEqual((state["queued"], state["spooled"]), (14 - len(spooled), len(spooled)))
        self.tick()  # new points wait in memory, behind the spool
        self.assertGreater(self.reporter.state()["queued"], 0)
        self.network.refusing = False
        self.clock.advance(self.pending_delays()[0])
        self.assertEqual(
            numbers(self.fake.written), list(range(self.points.n)), "spool first, in order"
        )
        self.assertFalse(os.path.exists(self.spool_path), "removed once delivered")
        self.assertEqual(self.reporter.state()["spooled"], 0)

    def test_an_unwritable_spool_keeps_points_in_memory(self) -> None:
        events = capture_all_logs(self)
        self.make(start=False)
        os.makedirs(os.path.dirname(os.path.dirname(self.spool_path)))
        with open(os.path.dirname(self.spool_path), "w"):
            pass  # a file where the state directory should be
        self.reporter.startService()
        self.addCleanup(self.stop_if_running)
        self.network.refusing = True
        self.tick(8)
        self.assertEqual(self.reporter.state()["queued"], 8)
        self.assertEqual(sum("cannot be written" in rendered([e]) for e in events), 1)


class SpoolReplayTests(ReporterTestCase):
    def test_replayed_first_in_order_corrupt_lines_counted(self) -> None:
        self.make(start=False)
        os.makedirs(os.path.dirname(self.spool_path))
        old = [f"t,host=pi n={i}i {1600000000000 + i}" for i in range(100, 103)]
        with open(self.spool_path, "w") as f:
            f.write(old[0] + "\n" + "t,host=pi n=\x01 broken\n" + old[1] + "\n" + old[2] + "\n")
        self.reporter.startService()
        self.addCleanup(self.stop_if_running)
        self.assertEqual(self.fake.writes[0].lines, old, "replayed at start, before any tick")
        self.assertFalse(os.path.exists(self.spool_path))
        self.tick()
        self.assertEqual(numbers(self.fake.written), [100, 101, 102, 0])
        [drops] = [line for line in self.fake.written if line.startswith("pistatsd_reporter,")]
        self.assertIn("spool_corrupt=1i", drops)
        self.assertEqual(self.reporter.state()["dropped"], 1)

    def test_a_large_spool_is_replayed_in_batches(self) -> None:
        self.make(start=False, batch_size=100)
        os.makedirs(os.path.dirname(self.spool_path))
        with open(self.spool_path, "w") as f:
            f.writelines(f"t,host=pi n={i}i {1600000000000 + i}\n" for i in range(250))
        self.reporter.startService()
        self.addCleanup(self.stop_if_running)
        self.assertEqual([len(s.lines) for s in self.fake.writes], [100, 100, 50])
        self.assertEqual(numbers(self.fake.written), list(range(250)))


class ShutdownTests(ReporterTestCase):
    def test_the_last_partial_interval_is_delivered(self) -> None:
        self.make()
        self.tick()
        self.clock.advance(3)
        self.successResultOf(self.reporter.stopService())
        self.assertEqual(numbers(self.fake.written), [0, 1])
        self.assertFalse(os.path.exists(self.spool_path))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_unreachable_influx_everything_is_spooled(self) -> None:
        self.make(per_tick=2)
        self.network.refusing = True
        self.tick(2)
        d = self.reporter.stopService()
        self.successResultOf(d)  # refused at once: no need to wait the 5 s
        self.assertEqual(numbers(self.spooled_lines()), list(range(6)))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_the_flush_is_bounded_to_five_seconds_then_spooled(self) -> None:
        events = capture_all_logs(self)
        self.make()
        self.tick()  # delivered
        self.fake.hang = True
        self.tick()
        d = self.reporter.stopService()
        self.clock.advance(4.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.successResultOf(d)
        self.assertEqual(numbers(self.spooled_lines()), [1, 2], "in-flight batch included")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        text = rendered(events)
        self.assertIn("did not answer within the 5.0 s shutdown flush", text)
        self.assertIn("2 unsent points spooled", text)
        self.assertNotIn("no answer within 10 s", text)

    def test_next_start_replays_the_spool(self) -> None:
        self.make()
        self.network.refusing = True
        self.tick(2)
        self.successResultOf(self.reporter.stopService())
        self.network.refusing = False
        again = InfluxReporter(
            target=self.reporter.target,
            clock=self.clock,
            points=Counting(),
            interval=INTERVAL,
            spool=Spool(self.spool_path),
            http=self.network,
        )
        again.startService()
        self.assertEqual(numbers(self.fake.written), [0, 1, 2])
        self.assertFalse(os.path.exists(self.spool_path))
        self.successResultOf(again.stopService())


class SecretTests(ReporterTestCase):
    def echo_authorization(self, status: int) -> Callable[[Seen], Reply]:
        def reply(seen: Seen) -> Reply:
            return error(status, f"bad credentials {seen.headers.get('authorization')}")

        return reply

    def check(self, target: InfluxTarget, secrets: list[str], scheme: str) -> None:
        events = capture_all_logs(self)
        self.make(target=target)
        self.fake.default = self.echo_authorization(401)
        self.tick()
        self.fake.default = self.echo_authorization(500)
        self.tick()
        self.network.refusing = True
        self.clock.advance(self.pending_delays()[0])
        self.fake.hang = True
        self.network.refusing = False
        self.tick()
        d = self.reporter.stopService()
        self.clock.advance(5)
        self.successResultOf(d)
        self.assertTrue(self.fake.seen)
        everything = (
            rendered(events) + json.dumps(self.reporter.state()) + repr(self.reporter.target)
        )
        self.assertIn(f"bad credentials {scheme} ***", everything, "the echo was scrubbed")
        for secret in secrets:
            self.assertNotIn(secret, everything)

    def test_password_never_in_logs_or_state(self) -> None:
        import base64

        target = InfluxTarget.build(
            "http://urluser:url-secret@influx:8086", user="u", password="pw-secret-1"
        )
        basic = base64.b64encode(b"u:pw-secret-1").decode()
        self.check(target, ["pw-secret-1", basic, "url-secret"], "Basic")

    def test_token_never_in_logs_or_state(self) -> None:
        target = InfluxTarget.build("http://influx:8086", token="tok-secret-2", org="o")
        self.check(target, ["tok-secret-2"], "Token")
