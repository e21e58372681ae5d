"""Route templates and the per-interval request tally."""

from twisted.trial.unittest import SynchronousTestCase

from pistatsd.web.traffic import RequestTally, method_label, route_of, status_class


class RouteTests(SynchronousTestCase):
    def test_known_routes(self) -> None:
        for path in ("/", "/alive", "/stats", "/sum", "/api", "/health", "/ws/echo"):
            self.assertEqual(route_of(path.encode()), path)
        self.assertEqual(route_of(b"/stats/"), "/stats")
        self.assertEqual(route_of(b"/stats/cpu"), "/stats/cpu")
        for part in ("filesystems", "disk_io", "processes", "fans", "throttled"):
            self.assertEqual(route_of(f"/stats/{part}".encode()), f"/stats/{part}")

    def test_unbounded_paths_collapse(self) -> None:
        self.assertEqual(route_of(b"/stats/x1"), "/stats/{unknown}")
        self.assertEqual(route_of(b"/api/sensors/room"), "/api/sensors/{name}")
        self.assertEqual(route_of(b"/api/zz"), "/api/{unknown}")
        self.assertEqual(route_of(b"/a/b/c.zzz"), "/{path}.zzz")
        routes = {route_of(f"/random-{i}.html".encode()) for i in range(500)}
        self.assertEqual(routes, {"/{static}"})

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
