"""Route labels from the route table, and the per-interval request tally."""

from prometheus_client.registry import CollectorRegistry
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.config import Config
from pistatsd.sensors.wiring import sensors_parts
from pistatsd.status import DaemonStatus
from pistatsd.web.routes import Route, RouteTable
from pistatsd.web.traffic import RequestTally, method_label, status_class
from pistatsd.web.wiring import core_routes, route_table
from pistatsd.ws.broadcast import Broadcaster
from pistatsd.ws.hub import WebSocketHub
from pistatsd.ws.origins import OriginPolicy
from pistatsd.ws.wiring import websocket_routes


def daemon_routes(state_dir: str) -> RouteTable:
    """The daemon's route table, as the composition root builds it."""
    clock = Clock()
    config = Config(state_dir=state_dir, sensor_root=(state_dir,))
    hub = WebSocketHub(Broadcaster(None, clock, 1.0), clock)
    return route_table(
        (
            *core_routes(
                sampler=None,
                status=DaemonStatus(clock=clock),
                history_seconds=60,
                registry=CollectorRegistry,
            ),
            *sensors_parts(config, clock).routes,
            *websocket_routes(hub, OriginPolicy()),
        )
    )


class RouteTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.routes = daemon_routes(self.mktemp())

    def route_of(self, path: bytes) -> str:
        return self.routes.label(path)

    def test_known_routes(self) -> None:
        for path in ("/", "/alive", "/stats", "/sum", "/api", "/health", "/ws/echo"):
            self.assertEqual(self.route_of(path.encode()), path)
        self.assertEqual(self.route_of(b"/stats/"), "/stats")
        self.assertEqual(self.route_of(b"/stats/cpu"), "/stats/cpu")
        for part in ("filesystems", "disk_io", "processes", "fans", "throttled"):
            self.assertEqual(self.route_of(f"/stats/{part}".encode()), f"/stats/{part}")

    def test_unbounded_paths_collapse(self) -> None:
        self.assertEqual(self.route_of(b"/stats/x1"), "/stats/{unknown}")
        self.assertEqual(self.route_of(b"/api/sensors/room"), "/api/sensors/{name}")
        self.assertEqual(self.route_of(b"/api/zz"), "/api/{unknown}")
        self.assertEqual(self.route_of(b"/a/b/c.zzz"), "/{path}.zzz")
        routes = {self.route_of(f"/random-{i}.html".encode()) for i in range(500)}
        self.assertEqual(routes, {"/{static}"})

    def test_links_and_labels_come_from_one_table(self) -> None:
        links = self.routes.links()
        self.assertEqual(links["sensors"], "/api/sensors")
        self.assertEqual(links["ws_echo"], "/ws/echo")
        self.assertEqual(links["metrics"], "/metrics")
        for path in links.values():
            self.assertEqual(self.route_of(path.encode()), path)
        self.assertNotIn("stats_throttled", links)
        self.assertEqual(self.route_of(b"/stats/throttled"), "/stats/throttled")

    def test_below_a_route_without_children_is_an_unknown_path(self) -> None:
        self.assertEqual(self.route_of(b"/alive/x"), "/{static}")
        self.assertEqual(self.route_of(b"/ws/echo/x"), "/{static}")
        self.assertEqual(self.route_of(b"/stats/cpu/deeper"), "/stats/{unknown}")

    def test_a_route_cannot_be_declared_twice(self) -> None:
        self.assertRaises(ValueError, RouteTable, [Route("/a"), Route("/a")])


class LabelMemoryTests(SynchronousTestCase):
    """Labels are remembered, but long paths are not, and the memory is bounded in bytes."""

    def test_memory_is_bounded_by_bytes_not_just_count(self) -> None:
        table = RouteTable([Route("/stats", below="/stats/{unknown}")])
        for i in range(5000):
            self.assertEqual(table.label(b"/stats/" + b"%d" % i + b"x" * 16000), "/stats/{unknown}")
            self.assertEqual(table.label(b"/%d" % i + b"y" * 200), "/{static}")
        limit = RouteTable.MAX_CACHED * RouteTable.MAX_CACHED_PATH
        self.assertLessEqual(table.cached_bytes, limit)
        self.assertLessEqual(limit, 1 << 20)

    def test_short_paths_are_remembered(self) -> None:
        table = RouteTable([Route("/stats")])
        table.label(b"/stats")
        table.label(b"/other")
        self.assertEqual(table.cached_bytes, len(b"/stats") + len(b"/other"))

    def test_methods_and_status(self) -> None:
        self.assertEqual(method_label(b"get"), "GET")
        self.assertEqual(method_label(b"BREW"), "OTHER")
        self.assertEqual(status_class(204), "2xx")
        self.assertEqual(status_class(503), "5xx")


class TallyTests(SynchronousTestCase):
    def test_take_resets(self) -> None:
        tally = RequestTally()
        tally.observe("GET", "/sum", "2xx")
        tally.observe("GET", "/sum", "2xx")
        tally.observe("POST", "/sum", "4xx")
        self.assertEqual(tally.take(), (3, {("GET", "/sum", "2xx"): 2, ("POST", "/sum", "4xx"): 1}))
        self.assertEqual(tally.take(), (0, {}))
