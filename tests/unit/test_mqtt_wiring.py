"""MQTT composed from the configuration: nothing when off, the link and publisher when on."""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.config import build_config
from pistatsd.metrics import MQTTMetrics
from pistatsd.mqtt.link import BrokerLink
from pistatsd.mqtt.publisher import StatePublisher
from pistatsd.mqtt.wiring import mqtt_parts
from pistatsd.status import MQTT_OFF, DaemonStatus


class FakeSampler:
    latest: dict[str, Any] = {"cpu": {"percent": 5.0}}


class WiringTests(SynchronousTestCase):
    def test_off(self) -> None:
        parts = mqtt_parts(
            build_config({}, environ={}), MemoryReactorClock(), sampler=FakeSampler()
        )  # type: ignore[arg-type]
        self.assertEqual(parts.services, ())
        self.assertEqual(parts.health(), dict(MQTT_OFF))
        self.assertEqual(list(parts.metrics.collect()), [])

    def test_on(self) -> None:
        config = build_config(
            {"mqtt": "mqtt://broker.example:1884", "mqtt-interval": "7"}, environ={}
        )
        parts = mqtt_parts(
            config,
            MemoryReactorClock(),
            sampler=FakeSampler(),  # type: ignore[arg-type]
            hostname=lambda: "pi",
        )
        publisher, link = parts.services
        self.assertIsInstance(publisher, StatePublisher)
        self.assertIsInstance(link, BrokerLink)
        self.assertEqual(publisher.step, 7.0)  # type: ignore[attr-defined]
        health = parts.health()
        self.assertEqual(set(health), set(MQTT_OFF))
        self.assertEqual(health["broker"], "broker.example:1884")
        self.assertEqual(health["state_topic"], "pistatsd/pi/state")
        self.assertIs(health["discovery"], True)
        self.assertIs(health["connected"], False)
        names = {family.name for family in MQTTMetrics(parts.health).collect()}
        self.assertEqual(
            names,
            {
                "pistatsd_mqtt_connected",
                "pistatsd_mqtt_entities",
                "pistatsd_mqtt_publishes",
                "pistatsd_mqtt_publish_failures",
                "pistatsd_mqtt_reconnects",
                "pistatsd_mqtt_connect_failures",
                "pistatsd_mqtt_states_replaced",
            },
        )

    def test_discovery_off(self) -> None:
        config = build_config({"mqtt": "mqtt://broker", "mqtt-discovery-prefix": ""}, environ={})
        parts = mqtt_parts(config, MemoryReactorClock(), sampler=FakeSampler())  # type: ignore[arg-type]
        self.assertIs(parts.health()["discovery"], False)

    def test_health_document_has_the_mqtt_section_when_off(self) -> None:
        status = DaemonStatus(clock=MemoryReactorClock())
        self.assertEqual(status.health()["mqtt"], dict(MQTT_OFF))
