"""C{GET /stats/series}: the index and queries, merging the ring and a fake store."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.history.api import HistoryBusy, Resolution, SeriesData
from pistatsd.history.merge import Axis, bucket
from pistatsd.status import DaemonStatus
from pistatsd.web.root import build_tree
from pistatsd.web.series import ENCODE_SLICE, RING_LOOKUPS, RING_SLICE
from pistatsd.web.site import PistatsdSite
from pistatsd.web.wiring import core_routes, route_table
from tests.support import Client, build_request, request

NOW = 1_800_000_000.0


def snapshot(when: float, cpu: float | None, memory: float = 40.0) -> dict:
    return {
        "timestamp": when,
        "cpu": {"percent": cpu, "load": [0.5, 0.25, 0.125]},
        "memory": {"percent": memory},
        "swap": {"percent": 0.0},
        "temperature": {"celsius": None},
    }


class FakeRing:
    """The sampler's ring: snapshots one C{interval} apart up to the wall clock's now."""

    def __init__(self, clock: Clock, interval: float = 1.0) -> None:
        self.clock = clock
        self.interval = interval
        self.snapshots: list[dict] = []
        self.asked: list[float | None] = []

    def fill(self, start: float, end: float, cpu: float) -> None:
        when = start
        while when <= end:
            self.snapshots.append(snapshot(when, cpu))
            when += self.interval

    @property
    def latest(self) -> dict:
        if not self.snapshots:
            raise RuntimeError("no snapshot yet")
        return self.snapshots[-1]

    def iter_history_encoded(self, seconds: float | None = None) -> Iterator[bytes]:
        self.asked.append(seconds)
        since = -math.inf if seconds is None else self.clock.seconds() - seconds
        chosen = [json.dumps(s).encode() for s in self.snapshots if s["timestamp"] >= since]
        return iter(chosen)

    def history_encoded(self, seconds: float | None = None) -> list[bytes]:
        return list(self.iter_history_encoded(seconds))


class FakeStore:
    """A L{HistoryReader} over 10-second points, rolled up as the real one chooses."""

    resolutions = (Resolution(10, 86400), Resolution(60, 7 * 86400), Resolution(900, 90 * 86400))

    def __init__(self) -> None:
        self.points: dict[str, list[tuple[float, float]]] = {"cpu.percent": [], "disk.old": []}
        self.queries: list[tuple[tuple[str, ...], float, float, int]] = []
        self.pending: list[Deferred[SeriesData]] | None = None
        self.failure: Exception | None = None

    def fill(self, name: str, start: float, end: float, value: float) -> None:
        when = start
        while when < end:
            self.points[name].append((when, value))
            when += 10

    def names(self) -> Deferred[list[str]]:
        return succeed(sorted(self.points))

    def oldest(self) -> Deferred[float | None]:
        times = [t for series in self.points.values() for t, _ in series]
        return succeed(min(times) if times else None)

    def query(
        self, names: Sequence[str], start: float, end: float, points: int
    ) -> Deferred[SeriesData]:
        self.queries.append((tuple(names), start, end, points))
        if self.failure is not None:
            return fail(self.failure)
        unknown = [n for n in names if n not in self.points]
        if unknown:
            return fail(KeyError(unknown[0]))
        wanted = (end - start) / points
        step = next((r.step for r in self.resolutions if r.step >= wanted), 900)
        axis = Axis.covering(start, end, step)
        samples = {}
        for name in names:
            for when, value in self.points[name]:
                samples.setdefault(when, {})[name] = value
        values = bucket(sorted(samples.items()), list(names), axis)
        data = SeriesData(axis.start, end, step, axis.times(), values)
        if self.pending is not None:
            d: Deferred[SeriesData] = Deferred()
            d.addCallback(lambda _: data)
            self.pending.append(d)
            return d
        return succeed(data)


class SeriesTestCase(SynchronousTestCase):
    store: FakeStore | None

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.ring = FakeRing(self.clock)
        self.store = FakeStore()
        self.site = self.make_site()

    def make_site(self) -> PistatsdSite:
        www = self.mktemp()
        routes = route_table(
            core_routes(
                sampler=self.ring,  # type: ignore[arg-type]
                status=DaemonStatus(clock=self.clock),
                history_seconds=3600,
                registry=CollectorRegistry,
                history=self.store,
                wall=self.clock.seconds,
            )
        )
        root = build_tree(routes, wall=self.clock.seconds, www=www)
        return PistatsdSite(root, reactor=self.clock)

    def get(self, path: str) -> tuple[int, dict]:
        client = Client(self.site)
        client.send(build_request("GET", path))
        self.turns = 0
        while not client.responses() and self.turns < 1000:
            self.clock.advance(0)
            self.turns += 1
        [response] = client.responses()
        self.assertEqual(response.header("content-type"), "application/json")
        return response.status, json.loads(response.body)

    def assertBad(self, path: str, words: str) -> None:
        status, body = self.get(path)
        self.assertEqual(status, 400, (path, body))
        self.assertIn(words, body["error"], path)


class IndexTests(SeriesTestCase):
    def test_index(self) -> None:
        """Stored and live names, the store's resolutions, the oldest point of either."""
        self.ring.fill(NOW - 100, NOW, cpu=50.0)
        self.store.fill("disk.old", NOW - 86400, NOW - 86000, 1.0)
        status, body = self.get("/stats/series")
        self.assertEqual(status, 200)
        self.assertEqual(
            body["series"],
            [
                "cpu.percent",
                "disk.old",
                "load.1",
                "load.15",
                "load.5",
                "memory.percent",
                "swap.percent",
            ],
        )
        self.assertEqual(
            body["resolutions"],
            [
                {"step": 10, "keep": 86400},
                {"step": 60, "keep": 604800},
                {"step": 900, "keep": 7776000},
            ],
        )
        self.assertEqual(body["oldest"], NOW - 86400)

    def test_index_ring_only(self) -> None:
        """Without a store: the live names, no resolutions, the ring's oldest."""
        self.store = None
        self.site = self.make_site()
        self.ring.fill(NOW - 100, NOW, cpu=50.0)
        status, body = self.get("/stats/series")
        self.assertEqual(status, 200)
        self.assertIn("cpu.percent", body["series"])
        self.assertEqual(body["resolutions"], [])
        self.assertEqual(body["oldest"], NOW - 100)

    def test_index_before_first_sample(self) -> None:
        self.store = None
        self.site = self.make_site()
        self.assertEqual(
            self.get("/stats/series"), (200, {"series": [], "resolutions": [], "oldest": None})
        )

    def test_listed_in_api(self) -> None:
        _, body = self.get("/api")
        self.assertEqual(body["links"]["series"], "/stats/series")


class QueryTests(SeriesTestCase):
    def test_defaults_last_hour_from_ring(self) -> None:
        """to = now, from = now - 3600, 600 points: the full ring answers at 6 s, no store."""
        self.ring.fill(NOW - 3599, NOW, cpu=20.0)
        status, body = self.get("/stats/series?names=cpu.percent")
        self.assertEqual(status, 200)
        self.assertEqual(body["to"], NOW)
        self.assertEqual(body["step"], 6)
        self.assertEqual(body["from"], math.floor((NOW - 3600) / 6) * 6)
        self.assertLessEqual(len(body["t"]), 601)
        self.assertEqual(body["t"][1] - body["t"][0], 6)
        self.assertEqual(self.store.queries, [])
        cpu = body["values"]["cpu.percent"]
        self.assertEqual(set(cpu), {"min", "avg", "max"})
        self.assertEqual(len(cpu["avg"]), len(body["t"]))
        self.assertEqual(cpu["avg"][-2], 20.0)

    def test_ring_decoded_in_slices(self) -> None:
        """An hour of ring is decoded a slice at a time, the reactor turning between."""
        self.ring.fill(NOW - 3599, NOW, cpu=20.0)
        turns = []
        call_later = self.clock.callLater
        self.clock.callLater = lambda *a, **kw: turns.append(a[0]) or call_later(*a, **kw)
        client = Client(self.site)
        client.send(build_request("GET", "/stats/series?names=cpu.percent"))
        self.assertEqual(client.responses(), [])
        self.clock.advance(0)
        [response] = client.responses()
        self.assertEqual(response.status, 200)
        self.assertEqual(turns.count(0), 3600 // RING_SLICE)

    def test_ring_numbers_kept_between_queries(self) -> None:
        """A second query of the same names decodes only the snapshots added since."""
        self.ring.fill(NOW - 3599, NOW, cpu=20.0)
        self.assertEqual(self.get("/stats/series?names=cpu.percent")[0], 200)
        turns = []
        call_later = self.clock.callLater
        self.clock.callLater = lambda *a, **kw: turns.append(a[0]) or call_later(*a, **kw)
        self.ring.snapshots.append(snapshot(NOW + 0.5, 80.0))
        status, body = self.get("/stats/series?names=cpu.percent&to=" + f"{NOW + 1:.0f}")
        self.assertEqual(status, 200)
        self.assertEqual(turns.count(0), 3601 // RING_LOOKUPS)  # only the look-ups' turns
        self.assertEqual(body["values"]["cpu.percent"]["max"][-1], 80.0)
        # Other names: decoded afresh.
        status, body = self.get("/stats/series?names=memory.percent")
        self.assertEqual(turns.count(0), 3601 // RING_LOOKUPS + 3601 // RING_SLICE)
        self.assertEqual(body["values"]["memory.percent"]["avg"][-2], 40.0)

    def test_band_min_avg_max(self) -> None:
        """Each bucket gives the min, mean and max of the samples it covers."""
        self.store = None
        self.site = self.make_site()
        for i, cpu in enumerate([10.0, 30.0, 20.0, 40.0]):
            self.ring.snapshots.append(snapshot(NOW - 40 + i * 10, cpu))
        status, body = self.get(f"/stats/series?names=cpu.percent&from={NOW - 40:.0f}&points=2")
        self.assertEqual((status, body["step"]), (200, 20))
        cpu = body["values"]["cpu.percent"]
        self.assertEqual(cpu["min"], [10.0, 20.0])
        self.assertEqual(cpu["avg"], [20.0, 30.0])
        self.assertEqual(cpu["max"], [30.0, 40.0])

    def test_nulls_where_no_data(self) -> None:
        """Buckets without samples, and names absent from a snapshot, are null."""
        self.store = None
        self.site = self.make_site()
        self.ring.snapshots.append(snapshot(NOW - 100, None))
        self.ring.snapshots.append(snapshot(NOW - 10, 5.0))
        url = f"/stats/series?names=cpu.percent,memory.percent&from={NOW - 100:.0f}&points=10"
        status, body = self.get(url)
        self.assertEqual(status, 200)
        self.assertEqual(body["values"]["cpu.percent"]["avg"], [None] * 9 + [5.0])
        self.assertEqual(body["values"]["memory.percent"]["avg"], [40.0] + [None] * 8 + [40.0])

    def test_after_restart_store_before_ring(self) -> None:
        """The ring holds 10 min since a restart: the store answers before, the ring after."""
        self.ring.fill(NOW - 600, NOW, cpu=50.0)
        self.store.fill("cpu.percent", NOW - 7200, NOW - 900, 10.0)
        status, body = self.get("/stats/series?names=cpu.percent")
        self.assertEqual(status, 200)
        self.assertEqual(self.store.queries, [(("cpu.percent",), NOW - 3600, NOW, 600)])
        self.assertEqual(body["step"], 10)
        avg = dict(zip(body["t"], body["values"]["cpu.percent"]["avg"], strict=True))
        self.assertEqual(avg[NOW - 3600], 10.0)
        self.assertEqual(avg[NOW - 910], 10.0)
        self.assertIsNone(avg[NOW - 800])  # down between the last flush and the restart
        self.assertEqual(avg[NOW - 600], 50.0)
        self.assertEqual(avg[NOW - 10], 50.0)

    def test_boundary_bucket_partly_in_ring(self) -> None:
        """A bucket the ring covers only in part keeps the store's numbers; the next is
        the ring's even where the store has some too."""
        self.ring.fill(NOW - 595, NOW, cpu=50.0)
        self.store.fill("cpu.percent", NOW - 3600, NOW - 580, 10.0)
        _, body = self.get("/stats/series?names=cpu.percent")
        avg = dict(zip(body["t"], body["values"]["cpu.percent"]["avg"], strict=True))
        self.assertEqual(avg[NOW - 600], 10.0)
        self.assertEqual(avg[NOW - 590], 50.0)

    def test_step_choice_week(self) -> None:
        """Seven days at 1000 points: the store's 1-minute resolution, ring on top."""
        self.ring.fill(NOW - 3599, NOW, cpu=50.0)
        self.store.fill("cpu.percent", NOW - 7 * 86400, NOW - 86400 * 6, 10.0)
        url = f"/stats/series?names=cpu.percent&from={NOW - 7 * 86400:.0f}&to={NOW:.0f}&points=1000"
        status, body = self.get(url)
        self.assertEqual((status, body["step"]), (200, 900))
        url = url.replace("points=1000", "points=5000")
        status, body = self.get(url)
        self.assertEqual((status, body["step"]), (200, 900))
        self.assertEqual(body["values"]["cpu.percent"]["avg"][0], 10.0)
        self.assertEqual(body["values"]["cpu.percent"]["avg"][-1], 50.0)
        url = f"/stats/series?names=cpu.percent&from={NOW - 86400:.0f}&points=5000"
        status, body = self.get(url)
        self.assertEqual((status, body["step"]), (200, 60))
        url = f"/stats/series?names=cpu.percent&from={NOW - 7200:.0f}&points=1000"
        self.assertEqual(self.get(url)[1]["step"], 10)

    def test_old_range_does_not_decode_ring(self) -> None:
        """A range that ends before the ring starts is the store's alone."""
        self.ring.fill(NOW - 60, NOW, cpu=50.0)
        self.store.fill("cpu.percent", NOW - 86400, NOW - 80000, 10.0)
        self.ring.asked.clear()
        url = f"/stats/series?names=cpu.percent&from={NOW - 86400:.0f}&to={NOW - 80000:.0f}"
        status, body = self.get(url)
        self.assertEqual(status, 200)
        self.assertEqual(self.ring.asked, [None])  # only the ring's start
        self.assertEqual(body["values"]["cpu.percent"]["avg"][0], 10.0)

    def test_stored_only_names(self) -> None:
        """A series no longer in the snapshot (an unplugged disk) is still queryable."""
        self.ring.fill(NOW - 60, NOW, cpu=50.0)
        self.store.fill("disk.old", NOW - 7200, NOW - 3000, 3.0)
        status, body = self.get("/stats/series?names=disk.old")
        self.assertEqual(status, 200)
        self.assertEqual(body["values"]["disk.old"]["max"][0], 3.0)
        self.assertIsNone(body["values"]["disk.old"]["max"][-1])

    def test_waits_for_store(self) -> None:
        """The answer comes when the store's thread answers, not before."""
        self.store.pending = []
        self.ring.fill(NOW - 60, NOW, cpu=50.0)
        client = Client(self.site)
        client.send(build_request("GET", "/stats/series?names=cpu.percent"))
        self.assertEqual(client.responses(), [])
        self.store.pending[0].callback(None)
        self.clock.advance(0)  # the ring's slices
        [response] = client.responses()
        self.assertEqual(response.status, 200)

    def test_store_unknown_name_is_400(self) -> None:
        """A name the store refuses after all (KeyError) is a 400, not a 500."""
        self.ring.fill(NOW - 60, NOW, cpu=50.0)
        self.store.points["gone"] = []
        del self.store.points["cpu.percent"]
        self.assertBad("/stats/series?names=gone,cpu.percent", "unknown series")

    def test_store_failure_is_500_logged(self) -> None:
        self.ring.fill(NOW - 60, NOW, cpu=50.0)
        self.store.failure = OSError("disk I/O error")
        status, body = self.get("/stats/series?names=cpu.percent")
        self.assertEqual((status, body), (500, {"error": "internal server error"}))
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_non_finite_numbers_are_null(self) -> None:
        """JSON has no NaN or infinity: such a stored value is no data."""
        self.ring.fill(NOW - 60, NOW, cpu=50.0)
        self.store.fill("disk.old", NOW - 7200, NOW - 7100, math.inf)
        self.store.fill("disk.old", NOW - 7100, NOW - 7000, 2.0)
        status, body = self.get(f"/stats/series?names=disk.old&from={NOW - 7200:.0f}&points=720")
        self.assertEqual((status, body["step"]), (200, 10))
        self.assertEqual(body["values"]["disk.old"]["max"][9:11], [None, 2.0])

    def test_busy_store_is_503_with_retry_after(self) -> None:
        """A store with too many queries waiting: 503 and Retry-After, nothing logged."""
        self.ring.fill(NOW - 60, NOW, cpu=50.0)
        self.store.failure = HistoryBusy("8 history queries running; retry shortly")
        client = Client(self.site)
        client.send(build_request("GET", "/stats/series?names=cpu.percent"))
        self.clock.advance(0)
        [response] = client.responses()
        self.assertEqual(response.status, 503)
        self.assertEqual(response.header("retry-after"), "1")
        self.assertEqual(json.loads(response.body), {"error": str(self.store.failure)})
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_large_answer_encoded_in_slices(self) -> None:
        """A 30-day answer of three series is encoded a few lists at a time, the reactor
        turning between, into exactly the bytes of one C{json.dumps}."""
        start = NOW - 30 * 86400
        for name in ("cpu.percent", "disk.old"):
            self.store.fill(name, start, start + 86400, 12.5)
        self.store.points["mem.x"] = [(start + 10 * i, i / 7) for i in range(8640)]
        path = f"/stats/series?names=cpu.percent,disk.old,mem.x&from={start:.0f}&points=1000"
        turns = []
        call_later = self.clock.callLater
        self.clock.callLater = lambda *a, **kw: turns.append(a[0]) or call_later(*a, **kw)
        client = Client(self.site)
        client.send(build_request("GET", path))
        self.assertEqual(client.responses(), [])
        while not client.responses():
            self.clock.advance(0)
        [response] = client.responses()
        self.assertEqual(response.status, 200)
        body = json.loads(response.body)
        # 30 days of 15 min points: each list is longer than a slice, so the
        # reactor turns before each of the 9 lists after the time axis (and
        # once after the store's answer).
        self.assertGreater(len(body["t"]), ENCODE_SLICE)
        self.assertEqual(turns.count(0), 1 + 9)
        expected = {key: body[key] for key in ("from", "to", "step", "t", "values")}
        self.assertEqual(response.body, json.dumps(expected, separators=(",", ":")).encode())
        self.assertEqual(list(body["values"]), ["cpu.percent", "disk.old", "mem.x"])
        self.assertEqual(body["values"]["cpu.percent"]["avg"][0], 12.5)


class BadQueryTests(SeriesTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.ring.fill(NOW - 60, NOW, cpu=50.0)

    def test_unknown_names(self) -> None:
        self.assertBad("/stats/series?names=cpu.percent,nope,nah", "unknown series: nope,nah")
        self.assertEqual(self.store.queries, [])

    def test_unknown_names_ring_only(self) -> None:
        self.store = None
        self.site = self.make_site()
        self.assertBad("/stats/series?names=disk.old", "unknown series: disk.old")

    def test_bad_numbers(self) -> None:
        for arg in ("from", "to"):
            for raw in ("abc", "1e9", "-5", "1_0", "%20100", "nan", "inf", "", "%D9%A3"):
                self.assertBad(f"/stats/series?names=cpu.percent&{arg}={raw}", arg)

    def test_bad_points(self) -> None:
        for raw in ("0", "5001", "1.5", "+5", "-1", "abc", "", "1e3", "99999999999999999999"):
            self.assertBad(f"/stats/series?names=cpu.percent&points={raw}", "points")

    def test_points_limits_accepted(self) -> None:
        for raw in ("1", "5000"):
            status, _ = self.get(f"/stats/series?names=cpu.percent&points={raw}")
            self.assertEqual(status, 200, raw)

    def test_from_not_before_to(self) -> None:
        self.assertBad("/stats/series?names=cpu.percent&from=2000&to=2000", "before")
        self.assertBad("/stats/series?names=cpu.percent&from=2001&to=2000", "before")
        self.assertBad(f"/stats/series?names=cpu.percent&from={NOW + 10:.0f}", "before")

    def test_huge_range(self) -> None:
        self.assertBad("/stats/series?names=cpu.percent&from=0", "longer than")
        status, _ = self.get(f"/stats/series?names=cpu.percent&from={NOW - 9 * 366 * 86400:.0f}")
        self.assertEqual(status, 200)

    def test_names(self) -> None:
        self.assertBad("/stats/series?names=", "names")
        self.assertBad("/stats/series?names=cpu.percent,", "names")
        self.assertBad("/stats/series?names=" + "x" * 201, "names")
        self.assertBad("/stats/series?names=%FF", "UTF-8")
        self.assertBad("/stats/series?from=1000", "names is required")
        self.assertBad("/stats/series?names=cpu.percent&names=load.1", "more than once")
        many = ",".join(f"s{i}" for i in range(21))
        self.assertBad("/stats/series?names=" + many, "at most 20")

    def test_twenty_names_repeated_once(self) -> None:
        """Repeats count once; twenty known names are fine."""
        self.store.points.update({f"s{i}": [] for i in range(20)})
        names = ",".join(f"s{i}" for i in range(20)) + ",s0"
        status, body = self.get("/stats/series?names=" + names)
        self.assertEqual(status, 200)
        self.assertEqual(len(body["values"]), 20)

    def test_other_methods(self) -> None:
        response = request(self.site, "POST", "/stats/series", body=b"")
        self.assertEqual(response.status, 405)

    def test_history_unchanged(self) -> None:
        response = request(self.site, "GET", "/stats/history")
        self.assertEqual(response.status, 200)
        self.assertEqual(len(json.loads(response.body)["snapshots"]), 61)
