"""The standard points, built from the tally, the sampler snapshot and the sensors."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from pistatsd.influx.points import DaemonPoints, request_points, sensor_points, system_point
from pistatsd.web.traffic import RequestTally
from tests.influxd import capture_all_logs

SNAPSHOT: dict[str, Any] = {
    "timestamp": 1700000000.0,
    "hostname": "pi",
    "cpu": {"percent": 12.5, "per_cpu": [10.0, 15.0], "count": 2, "load": [0.25, 0.2, 0.1]},
    "temperature": {"celsius": 48.3, "sensors": {"cpu_thermal": 48.3}},
    "memory": {"total": 1, "available": 1, "used": 0, "percent": 37},
    "uptime": {"seconds": 12345.6, "boot_time": 1.0},
}


class FakeSampler:
    def __init__(self, snapshot: dict[str, Any] | None) -> None:
        self.snapshot = snapshot

    @property
    def latest(self) -> dict[str, Any]:
        if self.snapshot is None:
            raise RuntimeError("no snapshot yet")
        return self.snapshot


class FakeSensors:
    def __init__(self, readings: dict[str, float | None] | Exception) -> None:
        self.result = readings

    def readings(self) -> dict[str, float | None]:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


class BuilderTests(SynchronousTestCase):
    def test_requests_and_http_requests(self) -> None:
        by_kind = {("GET", "/stats", "2xx"): 3, ("POST", "/sum", "4xx"): 1}
        got = [p.line() for p in request_points("pi", 4, by_kind, 1000)]
        self.assertEqual(
            got,
            [
                "requests,request=GETs_per_minute,host=pi requests_number=4i 1000",
                "http_requests,host=pi,method=GET,path=/stats,status=2xx count=3i 1000",
                "http_requests,host=pi,method=POST,path=/sum,status=4xx count=1i 1000",
            ],
        )

    def test_zero_interval_still_writes_requests(self) -> None:
        got = [p.line() for p in request_points("pi", 0, {}, 1000)]
        self.assertEqual(got, ["requests,request=GETs_per_minute,host=pi requests_number=0i 1000"])

    def test_system_fields_are_floats(self) -> None:
        point = system_point(SNAPSHOT, "pi", 1000)
        assert point is not None
        self.assertEqual(
            point.line(),
            "system,host=pi cpu=12.5,memory_percent=37.0,temperature=48.3,load1=0.25,"
            "uptime=12345.6 1000",
        )

    def test_system_leaves_out_nulls(self) -> None:
        warming = dict(SNAPSHOT, cpu={"percent": None, "load": None}, temperature={"celsius": None})
        point = system_point(warming, "pi", 1000)
        assert point is not None
        self.assertEqual(point.line(), "system,host=pi memory_percent=37.0,uptime=12345.6 1000")
        self.assertIsNone(system_point({"hostname": "pi", "cpu": None}, "pi", 1))

    def test_sensors_skip_none(self) -> None:
        got = [p.line() for p in sensor_points("pi", {"room": 21.5, "dead": None, "b d": 3}, 1)]
        self.assertEqual(
            got,
            [
                "sensors,host=pi,sensor=b\\ d value=3.0 1",
                "sensors,host=pi,sensor=room value=21.5 1",
            ],
        )


class DaemonPointsTests(SynchronousTestCase):
    def test_everything_tagged_with_the_snapshot_hostname(self) -> None:
        tally = RequestTally()
        tally.observe("GET", "/alive", "2xx")
        source = DaemonPoints(tally, FakeSampler(SNAPSHOT), FakeSensors({"room": 20.0}), host="x")
        lines = [p.line() for p in source(5)]
        self.assertEqual(len(lines), 5)  # requests, http_requests, system, temp, sensors
        self.assertTrue(all(",host=pi" in line for line in lines), lines)
        self.assertEqual(source.host, "pi")
        self.assertEqual(tally.total, 0, "the tally was taken")

    def test_no_snapshot_yet_still_reports_requests(self) -> None:
        source = DaemonPoints(RequestTally(), FakeSampler(None), None, host="box")
        self.assertEqual(
            [p.line() for p in source(5)],
            ["requests,request=GETs_per_minute,host=box requests_number=0i 5"],
        )

    def test_a_broken_sensor_source_costs_only_the_sensors(self) -> None:
        events = capture_all_logs(self)
        sensors = FakeSensors(OSError("bus error"))
        source = DaemonPoints(RequestTally(), FakeSampler(SNAPSHOT), sensors, host="x")
        self.assertEqual([p.measurement for p in source(5)], ["requests", "system", "temp"])
        source(6)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1, "logged once per episode")
        sensors.result = {"room": 1.0}
        self.assertEqual(
            [p.measurement for p in source(7)], ["requests", "system", "temp", "sensors"]
        )
        self.assertTrue(any("can be collected again" in str(e.get("log_format")) for e in events))
