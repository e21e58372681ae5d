"""/metrics: parsed with prometheus_client's own parser, on the whole daemon in memory."""

from __future__ import annotations

import random

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.config import build_config
from pistatsd.tap import makeService
from tests.support import Client, request


def families(body: bytes) -> dict:
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


class MetricsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        config = build_config({"port": ["tcp:8888"], "heartbeat": "0"})
        self.service = makeService(config, self.reactor)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        [(_port, self.site, _backlog, _interface)] = self.reactor.tcpServers

    def scrape(self) -> dict:
        response = request(self.site, "GET", "/metrics")
        self.assertEqual(response.status, 200)
        self.assertTrue(response.header("content-type").startswith("text/plain"))
        return families(response.body)

    def test_expected_families(self) -> None:
        request(self.site, "GET", "/sum?a=1")
        found = self.scrape()
        for name in (
            "pistatsd_http_requests",
            "pistatsd_http_connections",
            "pistatsd_connections_refused",
            "pistatsd_websocket_clients",
            "pistatsd_broadcast_clients",
            "pistatsd_memory_percent",
            "pistatsd_load",
            "process_resident_memory_bytes",
        ):
            self.assertIn(name, found)
        [sample] = [
            s
            for s in found["pistatsd_http_requests"].samples
            if s.name.endswith("_total") and s.labels["route"] == "/sum"
        ]
        self.assertEqual(sample.labels, {"method": "GET", "route": "/sum", "status": "200"})
        self.assertEqual(sample.value, 1.0)

    def test_refused_requests_are_counted(self) -> None:
        """413, a parser 400 and a 421 are requests too (SPEC 8: whatever the status)."""
        request(self.site, "POST", "/sum", {"Content-Type": "application/json"}, b"1" * 70000)
        Client(self.site).send(b"GET /sum HTTP/1.1\r\nHost: 127.0.0.1\r\nbroken\r\n\r\n")
        request(self.site, "GET", "/sum", {"Host": "rebind.example"})
        counted = {
            (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
            for s in self.scrape()["pistatsd_http_requests"].samples
            if s.name.endswith("_total")
        }
        for kind in (("POST", "/sum", "413"), ("GET", "/sum", "400"), ("GET", "/sum", "421")):
            self.assertEqual(counted.get(kind), 1.0, kind)

    def test_labels_stay_bounded_under_random_paths(self) -> None:
        rng = random.Random(7)
        for _ in range(300):
            path = "/" + "".join(rng.choice("abcdefghij/") for _ in range(12))
            request(self.site, "GET", path)
            request(self.site, rng.choice(["GET", "BREW", "PUT"]), f"/stats/x{rng.random()}")
        routes = {
            (s.labels["method"], s.labels["route"])
            for s in self.scrape()["pistatsd_http_requests"].samples
            if s.name.endswith("_total")
        }
        self.assertLessEqual(len(routes), 10, routes)
        self.assertIn(("OTHER", "/stats/{unknown}"), routes)

    def test_cpu_gauge_appears_after_warm_up(self) -> None:
        self.assertNotIn("pistatsd_cpu_percent", self.scrape())
        self.reactor.advance(1.0)
        self.assertIn("pistatsd_cpu_percent", self.scrape())

    def test_listed_in_api(self) -> None:
        import json

        links = json.loads(request(self.site, "GET", "/api").body)["links"]
        self.assertEqual(links["metrics"], "/metrics")
        self.assertEqual(links["ws_broadcast"], "/ws/broadcast")


class ScrapeRegistryTests(SynchronousTestCase):
    """The registry, and prometheus_client with it, waits for the first scrape."""

    def test_built_once_at_the_first_call(self) -> None:
        from pistatsd.metrics import RequestCounter, ScrapeRegistry

        requests = RequestCounter()
        requests.count("GET", "/sum", 200)
        registry = ScrapeRegistry(requests, ())
        self.assertFalse(registry.built)
        first = registry()
        self.assertTrue(registry.built)
        self.assertIs(registry(), first)
        self.assertEqual(
            first.get_sample_value(
                "pistatsd_http_requests_total", {"method": "GET", "route": "/sum", "status": "200"}
            ),
            1.0,
        )
        # The process's own figures are registered too.
        self.assertIsNotNone(first.get_sample_value("process_cpu_seconds_total"))
