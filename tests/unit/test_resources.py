"""The resource tree over in-memory HTTP: negotiation, /alive, /api, /health, /stats, *.zzz."""

from __future__ import annotations

import json
import time

from prometheus_client.registry import CollectorRegistry
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.sampler import TooManyMeasurements
from pistatsd.status import INFLUX_OFF, WEBSOCKETS_IDLE, DaemonStatus
from pistatsd.web.connections import ConnectionCounter
from pistatsd.web.root import build_tree
from pistatsd.web.site import PistatsdSite
from pistatsd.web.wiring import core_routes, route_table
from tests.machine_snapshots import OLD, PI
from tests.support import Client, build_request, request

SNAPSHOT = {
    "timestamp": 1000.0,
    "hostname": "pi",
    "cpu": {
        "percent": 12.5,
        "per_cpu": [10.0, 15.0],
        "count": 2,
        "load": [0.1, 0.2, 0.3],
        "interval": 1.0,
    },
    "temperature": {"celsius": None, "sensors": {}},
    "memory": {"total": 1, "available": 1, "used": 0, "percent": 37.2},
    "uptime": {"seconds": 5.0, "boot_time": 995.0},
    "swap": {"total": 0, "used": 0, "percent": 0.0},
    "disk": {"path": "/", "total": 1, "used": 0, "free": 1, "percent": 0.0},
    "net": {"bytes_sent": 0, "bytes_recv": 0, "packets_sent": 0, "packets_recv": 0},
    "filesystems": [],
    "disk_io": {},
    "processes": None,
    "fans": {},
}


class FakeSampler:
    """The sampler's web-facing interface, with measurements driven by a Clock."""

    def __init__(self, clock: Clock, max_pending: int = 3) -> None:
        self.clock = clock
        self.latest = SNAPSHOT
        self.latest_json = json.dumps(SNAPSHOT).encode()
        self.max_pending = max_pending
        self.pending: list[Deferred] = []
        self.history_asked: list[float | None] = []

    def history(self, seconds=None):
        self.history_asked.append(seconds)
        return [SNAPSHOT]

    def history_encoded(self, seconds=None):
        return [json.dumps(s).encode() for s in self.history(seconds)]

    def iter_history_encoded(self, seconds=None):
        return iter(self.history_encoded(seconds))

    history_seconds = 3600.0

    def history_after(self, taken: float) -> list[tuple[float, bytes]]:
        now = self.clock.seconds()
        return [(now, json.dumps(SNAPSHOT).encode())] if taken < now else []

    def measure_cpu(self, seconds: float) -> Deferred:
        if len(self.pending) >= self.max_pending:
            raise TooManyMeasurements()
        d: Deferred = Deferred(lambda d: call.cancel())
        cpu = dict(SNAPSHOT["cpu"], interval=seconds, percent=50.0)

        def fire() -> None:
            self.pending.remove(d)
            d.callback(dict(SNAPSHOT, cpu=cpu))

        call = self.clock.callLater(seconds, fire)
        d.addBoth(lambda r: (d in self.pending and self.pending.remove(d), r)[1])
        self.pending.append(d)
        return d


class TreeTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(time.mktime((2026, 11, 22, 12, 0, 0, 0, 0, -1)))
        self.www = self.mktemp()
        import os

        os.makedirs(self.www)
        with open(os.path.join(self.www, "index.html"), "w") as f:
            f.write("<html>dashboard</html>")
        with open(os.path.join(self.www, "hello.txt"), "w") as f:
            f.write("hello")
        self.sampler = FakeSampler(self.clock)
        self.connections = ConnectionCounter(1024)
        self.status = DaemonStatus(clock=self.clock, connections=self.connections)
        routes = route_table(
            core_routes(
                sampler=self.sampler,
                status=self.status,
                history_seconds=3600,
                registry=CollectorRegistry,
            )
        )
        root = build_tree(routes, wall=self.clock.seconds, www=self.www)
        self.site = PistatsdSite(root, reactor=self.clock)

    def get(self, path: str, **headers: str):
        return request(self.site, "GET", path, headers=headers)


class RootTests(TreeTestCase):
    def test_browser_gets_dashboard(self) -> None:
        response = self.get("/", Accept="text/html,application/xhtml+xml,*/*;q=0.8")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.body, b"<html>dashboard</html>")
        self.assertEqual(response.header("vary"), "Accept")

    def test_curl_gets_alive(self) -> None:
        for headers in ({}, {"Accept": "*/*"}, {"Accept": "application/json"}):
            response = self.get("/", **headers)
            self.assertEqual(response.body, b"Alive", headers)
            self.assertTrue(response.header("content-type").startswith("text/plain"))
            self.assertEqual(response.header("vary"), "Accept")

    def test_alive(self) -> None:
        response = self.get("/alive")
        self.assertEqual((response.status, response.body), (200, b"Alive"))

    def test_static_fallback(self) -> None:
        self.assertEqual(self.get("/hello.txt").body, b"hello")
        self.assertEqual(self.get("/missing.txt").status, 404)


class ZzzTests(TreeTestCase):
    def test_page(self) -> None:
        response = self.get("/some/where.zzz")
        self.assertEqual(response.status, 200)
        self.assertTrue(response.header("content-type").startswith("text/html"))
        self.assertIn(b"You requested /some/where.zzz on day 326 in 2026", response.body)

    def test_path_is_escaped(self) -> None:
        response = self.get("/%3Cscript%3Ealert(1)%3C/script%3E.zzz")
        self.assertNotIn(b"<script>", response.body)
        self.assertIn(b"&lt;script&gt;alert(1)&lt;/script&gt;.zzz", response.body)

    def test_top_level(self) -> None:
        self.assertIn(b"You requested /x.zzz", self.get("/x.zzz").body)


class ApiTests(TreeTestCase):
    def test_index_links_and_echo(self) -> None:
        response = self.get("/api?a=1&a=2&b=%C3%A9")
        self.assertEqual(response.header("content-type"), "application/json")
        body = json.loads(response.body)
        self.assertEqual(body["name"], "pistatsd")
        self.assertEqual(body["args"], {"a": ["1", "2"], "b": ["é"]})
        for link in body["links"].values():
            if link == "/api":
                continue
            self.assertNotEqual(self.get(link).status, 404, link)
        for part in ("filesystems", "disk_io", "processes", "fans", "net"):
            self.assertEqual(body["links"][f"stats_{part}"], f"/stats/{part}")
        self.assertNotIn("stats_throttled", body["links"])  # only on a Raspberry Pi

    def test_unknown_below_api(self) -> None:
        response = self.get("/api/nothing")
        self.assertEqual(response.status, 404)
        self.assertIn("error", json.loads(response.body))

    def test_405_is_json_with_allow(self) -> None:
        response = request(self.site, "DELETE", "/api")
        self.assertEqual(response.status, 405)
        self.assertEqual(response.header("allow"), "GET, HEAD")
        self.assertEqual(json.loads(response.body), {"error": "method DELETE not allowed"})

    def test_health(self) -> None:
        self.status.mark_started()
        self.clock.advance(42)
        for _ in range(3):
            self.connections.opened("websocket")
        body = json.loads(self.get("/health").body)
        self.assertEqual(body["status"], "ok")
        self.assertEqual(body["uptime"], 42)
        self.assertEqual(body["websocket_clients"], 3)
        self.assertEqual(body["influx"], dict(INFLUX_OFF))
        self.assertEqual(body["websockets"], dict(WEBSOCKETS_IDLE))


class HealthShapeTests(SynchronousTestCase):
    """C{/health} keeps one shape whatever is switched on: monitoring relies on the keys."""

    def test_influx_off_has_every_key_of_a_real_reporter(self) -> None:
        from pistatsd.config import Config
        from pistatsd.influx.wiring import influx_service
        from pistatsd.web.traffic import RequestTally

        clock = Clock()
        reporter = influx_service(
            Config(influx="http://127.0.0.1:8086"),
            clock,
            tally=RequestTally(),
            sampler=FakeSampler(clock),
            sensors=None,
            state_dir=self.mktemp(),
        )
        on = reporter.state()
        off = DaemonStatus(clock=clock).health()["influx"]
        self.assertEqual(set(off), set(on))
        self.assertEqual((on["enabled"], off["enabled"]), (True, False))
        for key in ("queued", "spooled", "dropped"):
            self.assertEqual(off[key], 0, key)
        for key in ("last_success", "last_error", "url", "api"):
            self.assertIsNone(off[key], key)

    def test_websockets_idle_has_every_key_of_a_real_hub(self) -> None:
        from pistatsd.ws.broadcast import Broadcaster
        from pistatsd.ws.hub import WebSocketHub

        clock = Clock()
        hub = WebSocketHub(Broadcaster(FakeSampler(clock), clock, 1.0), clock)
        idle = DaemonStatus(clock=clock).health()["websockets"]
        self.assertEqual(set(idle), set(hub.detail()))
        self.assertEqual(idle["clients"], 0)

    def test_off_shapes_are_not_shared(self) -> None:
        """A caller that edits one document does not change the next."""
        status = DaemonStatus(clock=Clock())
        status.health()["influx"]["queued"] = 5
        self.assertEqual(status.health()["influx"]["queued"], 0)


class StatsTests(TreeTestCase):
    def test_snapshot_is_served_pre_encoded(self) -> None:
        response = self.get("/stats")
        self.assertEqual(response.header("content-type"), "application/json")
        self.assertEqual(response.body, self.sampler.latest_json)

    def test_parts(self) -> None:
        for part in ("cpu", "temperature", "memory", "uptime"):
            body = json.loads(self.get(f"/stats/{part}").body)
            self.assertEqual(body, {"timestamp": 1000.0, part: SNAPSHOT[part]})

    def test_machine_parts(self) -> None:
        """Every part of SPEC 11, as the collectors fill it, empty or null."""
        self.sampler.latest = PI
        for part in ("filesystems", "disk_io", "processes", "fans", "net", "throttled"):
            response = self.get(f"/stats/{part}")
            self.assertEqual(response.status, 200, part)
            self.assertEqual(response.header("cache-control"), "no-store")
            self.assertEqual(
                json.loads(response.body), {"timestamp": PI["timestamp"], part: PI[part]}
            )
        self.sampler.latest = SNAPSHOT
        for part, value in (("filesystems", []), ("disk_io", {}), ("processes", None)):
            self.assertEqual(json.loads(self.get(f"/stats/{part}").body)[part], value, part)

    def test_machine_parts_missing_from_an_older_snapshot(self) -> None:
        """A collector that does not produce a part: 404 with a reason, like C{throttled}."""
        self.sampler.latest = OLD
        for part in ("filesystems", "disk_io", "processes", "fans", "throttled"):
            response = self.get(f"/stats/{part}")
            self.assertEqual(response.status, 404, part)
            self.assertEqual(
                json.loads(response.body), {"error": f"{part} is not available on this machine"}
            )

    def test_missing_part_and_unknown_path(self) -> None:
        self.assertEqual(self.get("/stats/throttled").status, 404)
        self.assertEqual(self.get("/stats/bogus").status, 404)
        self.assertEqual(self.get("/stats/cpu/deeper").status, 404)

    def test_history(self) -> None:
        body = json.loads(self.get("/stats/history?seconds=60").body)
        self.assertEqual(body["snapshots"], [SNAPSHOT])
        self.assertEqual(self.sampler.history_asked, [60.0])

    def test_history_bad_seconds(self) -> None:
        for raw in ("abc", "0", "-1", "nan", "3601", "6_0", "%2060", "6e1", "%D9%A3", "0x10"):
            self.assertEqual(self.get(f"/stats/history?seconds={raw}").status, 400, raw)
        self.assertEqual(self.get("/stats/history?seconds=60.5").status, 200)

    def test_interval_answers_after_the_window(self) -> None:
        client = Client(self.site)
        client.send(build_request("GET", "/stats?interval=0.5"))
        self.assertEqual(client.transport.value(), b"")
        self.clock.advance(0.5)
        [response] = client.responses()
        body = json.loads(response.body)
        self.assertEqual(body["cpu"]["interval"], 0.5)
        self.assertEqual(body["cpu"]["percent"], 50.0)

    def test_bad_intervals(self) -> None:
        python_only = ("1_0", "%201", "1%20", "1e0", "%D9%A3", "0x1", "+1", ".5", "5.")
        for raw in ("abc", "0", "-1", "11", "nan", "inf", "", *python_only):
            response = self.get(f"/stats?interval={raw}")
            self.assertEqual(response.status, 400, raw)
            self.assertIn("interval", json.loads(response.body)["error"])

    def test_pending_bound_gives_503(self) -> None:
        clients = [Client(self.site) for _ in range(4)]
        for client in clients:
            client.send(build_request("GET", "/stats?interval=1"))
        [refused] = clients[3].responses()
        self.assertEqual(refused.status, 503)
        self.assertEqual(refused.header("retry-after"), "1")
        self.clock.advance(1)
        for client in clients[:3]:
            self.assertEqual(client.responses()[0].status, 200)

    def test_disconnect_cancels_measurement(self) -> None:
        client = Client(self.site)
        client.send(build_request("GET", "/stats?interval=5"))
        self.assertEqual(len(self.sampler.pending), 1)
        client.close()
        self.assertEqual(self.sampler.pending, [])
        self.assertEqual(
            [c for c in self.clock.getDelayedCalls() if c.getTime() == self.clock.seconds() + 5],
            [],
        )
