"""The daemon with default options loads no feature it was not asked for.

Each of these is imported by its wiring only when configured (see the
wiring modules); importing the composition root must not pull them in.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.imports import import_closure

#: Loaded only with --influx, --tls, --mqtt or a notifier of the kind.
ON_DEMAND = (
    "treq",
    "twisted.mail",
    "pistatsd.influx.reporter",
    "pistatsd.influx.writer",
    "pistatsd.tls",
    "pistatsd.certificates",
    "pistatsd.mqtt.client",
    "pistatsd.notify.http",
    "pistatsd.notify.smtp",
    # Only with a notifier or --mqtt (their wiring imports them once configured).
    "pistatsd.notify.delivery",
    "pistatsd.notify.router",
    "pistatsd.mqtt.discovery",
    "pistatsd.mqtt.settings",
    # At the first scrape of /metrics (pistatsd.metrics.ScrapeRegistry).
    "prometheus_client",
)


class DefaultFootprintTests(SynchronousTestCase):
    def test_the_composition_root_loads_no_optional_feature(self) -> None:
        loaded = import_closure("pistatsd.compose")
        self.assertIn("pistatsd.influx.wiring", loaded, "the closure is followed")
        self.assertEqual(sorted(set(ON_DEMAND) & loaded), [])

    def test_the_options_load_neither_the_root_nor_twisted_networking(self) -> None:
        # twistd imports pistatsd.tap before the configuration is known; what
        # decides on TLS (pistatsd.footprint) must run before Twisted's TCP.
        loaded = import_closure("pistatsd.tap")
        self.assertIn("pistatsd.startup", loaded, "the closure is followed")
        networking = {"pistatsd.compose", "pistatsd.web.site", "twisted.internet.endpoints"}
        self.assertEqual(sorted(networking & loaded), [])

    def test_the_features_do_load_them(self) -> None:
        # The check above would pass on a closure that sees nothing.
        self.assertIn("treq", import_closure("pistatsd.influx.reporter"))
        self.assertIn("pistatsd.influx.writer", import_closure("pistatsd.influx.reporter"))
