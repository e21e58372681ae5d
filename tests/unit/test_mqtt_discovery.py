"""Home Assistant discovery payloads, checked against what HA's MQTT platforms document."""

from __future__ import annotations

import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from pistatsd import __version__
from pistatsd.alerts.events import AlertStatus
from pistatsd.mqtt.device import dashboard_url, node_id, this_device
from pistatsd.mqtt.discovery import Device, Topics, discovery_configs, encode, object_id
from pistatsd.mqtt.state import state_document

# The configuration variables of https://www.home-assistant.io/integrations/sensor.mqtt/
# (names as the page writes them; deprecated ones left out).
HA_SENSOR_KEYS = {
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "default_entity_id",
    "device",
    "device_class",
    "enabled_by_default",
    "encoding",
    "entity_category",
    "entity_picture",
    "expire_after",
    "force_update",
    "icon",
    "json_attributes_template",
    "json_attributes_topic",
    "last_reset_value_template",
    "name",
    "options",
    "payload_available",
    "payload_not_available",
    "platform",
    "qos",
    "state_class",
    "state_topic",
    "suggested_display_precision",
    "unique_id",
    "unit_of_measurement",
    "value_template",
}

# https://www.home-assistant.io/integrations/binary_sensor.mqtt/
HA_BINARY_SENSOR_KEYS = {
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "default_entity_id",
    "device",
    "device_class",
    "enabled_by_default",
    "encoding",
    "entity_category",
    "entity_picture",
    "expire_after",
    "force_update",
    "icon",
    "json_attributes_template",
    "json_attributes_topic",
    "name",
    "off_delay",
    "payload_available",
    "payload_not_available",
    "payload_off",
    "payload_on",
    "platform",
    "qos",
    "state_topic",
    "unique_id",
    "value_template",
}

# The "device" mapping both pages document.
HA_DEVICE_KEYS = {
    "configuration_url",
    "connections",
    "hw_version",
    "identifiers",
    "manufacturer",
    "model",
    "model_id",
    "name",
    "serial_number",
    "suggested_area",
    "sw_version",
    "via_device",
}

# Device classes and the units HA accepts with them (sensor entity docs, the
# rows used here), state classes, and the binary sensor class used.
HA_SENSOR_UNITS = {"temperature": {"°C", "°F", "K"}, "duration": {"s"}, "data_rate": {"B/s"}}
HA_STATE_CLASSES = {"measurement", "total", "total_increasing"}
HA_ENTITY_CATEGORIES = {"config", "diagnostic"}

DEVICE = Device(
    node="pistatsd_0123456789ab",
    name="pi",
    model="Raspberry Pi 4 Model B Rev 1.4",
    manufacturer="Raspberry Pi Ltd",
    sw_version="0.1.0",
    configuration_url="https://pi:8443/",
)
TOPICS = Topics(prefix="pistatsd/pi", discovery="homeassistant")

SNAPSHOT: dict[str, Any] = {
    "timestamp": 1732240000.0,
    "cpu": {"percent": 12.5, "load": [0.1, 0.2, 0.3]},
    "memory": {"percent": 37.2},
    "temperature": {"celsius": 48.3},
    "uptime": {"seconds": 12345.6},
    "net": {"rx_bytes_per_s": 100.0, "tx_bytes_per_s": 50.0},
    "filesystems": [{"mount": "/", "percent": 40.0}, {"mount": "/boot/firmware", "percent": 10.0}],
    "sensors": {
        "room": {"value": 21.5, "unit": "C", "error": None},
        "humidity": {"value": None, "unit": "%", "error": "unreadable"},
    },
    "throttled": {"now": {"under_voltage": True, "throttled": False, "freq_capped": False}},
}
ALERTS = (
    AlertStatus("filesystem-full:/boot", "filesystems./boot.percent", "firing", 0.0, 95, "warning"),
)


def configs() -> dict[str, dict[str, Any]]:
    return discovery_configs(DEVICE, TOPICS, SNAPSHOT, ALERTS)


class PayloadTests(SynchronousTestCase):
    def test_every_payload_uses_documented_keys_only(self) -> None:
        for topic, config in configs().items():
            component = topic.split("/")[1]
            allowed = HA_SENSOR_KEYS if component == "sensor" else HA_BINARY_SENSOR_KEYS
            with self.subTest(topic=topic):
                self.assertIn(component, ("sensor", "binary_sensor"))
                self.assertLessEqual(set(config), allowed)
                self.assertLessEqual(set(config["device"]), HA_DEVICE_KEYS)
                for required in ("state_topic", "unique_id", "availability_topic", "name"):
                    self.assertIn(required, config)
                self.assertEqual(config["state_topic"], "pistatsd/pi/state")
                self.assertEqual(config["availability_topic"], "pistatsd/pi/availability")
                self.assertEqual(config["device"]["identifiers"], ["pistatsd_0123456789ab"])
                self.assertEqual(config["device"]["sw_version"], "0.1.0")
                self.assertEqual(config["device"]["configuration_url"], "https://pi:8443/")

    def test_topics_have_the_discovery_shape(self) -> None:
        for topic, config in configs().items():
            with self.subTest(topic=topic):
                prefix, _, node, object_name, last = topic.split("/")
                self.assertEqual((prefix, node, last), ("homeassistant", DEVICE.node, "config"))
                self.assertRegex(object_name, r"^[A-Za-z0-9_-]+$")
                self.assertEqual(config["unique_id"], f"{DEVICE.node}_{object_name}")

    def test_classes_units_and_state_classes(self) -> None:
        for topic, config in configs().items():
            with self.subTest(topic=topic):
                if "/binary_sensor/" in topic:
                    self.assertEqual(config["device_class"], "problem")
                    self.assertEqual((config["payload_on"], config["payload_off"]), ("ON", "OFF"))
                    continue
                self.assertIn(config["state_class"], HA_STATE_CLASSES)
                if "device_class" in config:
                    self.assertIn(
                        config["unit_of_measurement"], HA_SENSOR_UNITS[config["device_class"]]
                    )
                if "entity_category" in config:
                    self.assertIn(config["entity_category"], HA_ENTITY_CATEGORIES)

    def test_the_entities_of_a_pi(self) -> None:
        by_name = {c["name"]: c for c in configs().values()}
        self.assertEqual(by_name["CPU"]["unit_of_measurement"], "%")
        self.assertEqual(by_name["Temperature"]["device_class"], "temperature")
        self.assertEqual(by_name["Temperature"]["unit_of_measurement"], "°C")
        self.assertEqual(by_name["Uptime"]["device_class"], "duration")
        self.assertEqual(by_name["Network received"]["unit_of_measurement"], "B/s")
        self.assertEqual(by_name["Network received"]["device_class"], "data_rate")
        self.assertEqual(by_name["Filesystem /boot/firmware"]["unit_of_measurement"], "%")
        self.assertEqual(by_name["Sensor room"]["device_class"], "temperature")
        self.assertEqual(by_name["Sensor room"]["unit_of_measurement"], "°C")
        self.assertEqual(by_name["Sensor humidity"]["unit_of_measurement"], "%")
        self.assertNotIn("device_class", by_name["Sensor humidity"])
        for name in ("Under-voltage", "Throttled", "Alert filesystem-full:/boot"):
            self.assertEqual(by_name[name]["device_class"], "problem")
        self.assertEqual(
            {name for name in by_name if name.startswith("Load")},
            {"Load 1 min", "Load 5 min", "Load 15 min"},
        )

    def test_a_machine_without_pi_flags_has_no_such_binary_sensors(self) -> None:
        snapshot = {k: v for k, v in SNAPSHOT.items() if k != "throttled"}
        names = {c["name"] for c in discovery_configs(DEVICE, TOPICS, snapshot, ()).values()}
        self.assertNotIn("Under-voltage", names)
        self.assertNotIn("Throttled", names)

    def test_unique_ids_are_unique_and_stable(self) -> None:
        first = [c["unique_id"] for c in configs().values()]
        self.assertEqual(len(first), len(set(first)))
        self.assertEqual(first, [c["unique_id"] for c in configs().values()])
        self.assertNotEqual(object_id("fs", "/boot/efi"), object_id("fs", "/boot_efi"))

    def test_value_templates_point_into_the_state_document(self) -> None:
        """Each template's path, read by hand, finds a value in the state document."""
        state = state_document(SNAPSHOT, ALERTS)
        expected = {
            "CPU": 12.5,
            "Memory": 37.2,
            "Temperature": 48.3,
            "Load 15 min": 0.3,
            "Uptime": 12346,
            "Network sent": 50.0,
            "Filesystem /boot/firmware": 10.0,
            "Sensor room": 21.5,
        }
        by_name = {c["name"]: c for c in configs().values()}
        for name, value in expected.items():
            with self.subTest(name=name):
                template = by_name[name]["value_template"]
                self.assertTrue(template.startswith("{{ value_json") and template.endswith(" }}"))
                self.assertEqual(_follow(state, template[len("{{ value_json") : -3]), value)
        alert = by_name["Alert filesystem-full:/boot"]["value_template"]
        self.assertIn("value_json.alerts[\"filesystem-full:/boot\"] == 'firing'", alert)
        self.assertEqual(state["alerts"], {"filesystem-full:/boot": "firing"})
        self.assertIs(state["under_voltage"], True)
        self.assertIs(state["throttled"], False)

    def test_encoding_is_canonical(self) -> None:
        config = next(iter(configs().values()))
        self.assertEqual(encode(config), encode(json.loads(encode(config))))


def _follow(document: Any, path: str) -> Any:
    """Follow C{.key} and C{["key"]} steps, as Jinja would."""
    while path:
        if path.startswith("."):
            key = path[1:].split(".")[0].split("[")[0]
            document = document[key]
            path = path[1 + len(key) :]
        else:
            assert path.startswith("["), path
            end = path.index("]")
            document = document[json.loads(path[1:end])]
            path = path[end + 1 :]
    return document


class StateTests(SynchronousTestCase):
    def test_missing_values_are_null(self) -> None:
        state = state_document({"cpu": {"percent": None}}, ())
        self.assertIsNone(state["cpu_percent"])
        self.assertIsNone(state["temperature"])
        self.assertIsNone(state["load_1"])
        self.assertEqual(state["filesystems"], {})
        self.assertNotIn("under_voltage", state)


class DeviceTests(SynchronousTestCase):
    def test_pi(self) -> None:
        files = {
            "/proc/device-tree/model": "Raspberry Pi 5 Model B Rev 1.0",
            "/etc/machine-id": "abc",
        }
        device = this_device(
            ports=("tcp:8888",), tls=(), dashboard=None, hostname=lambda: "pi", read=files.get
        )
        self.assertEqual(device.model, "Raspberry Pi 5 Model B Rev 1.0")
        self.assertEqual(device.manufacturer, "Raspberry Pi Ltd")
        self.assertEqual(device.node, node_id("abc", "pi"))
        self.assertEqual(device.configuration_url, "http://pi:8888/")
        self.assertEqual(device.sw_version, __version__)

    def test_id_falls_back_on_the_hostname_and_is_stable(self) -> None:
        self.assertEqual(node_id(None, "box"), node_id(None, "box"))
        self.assertNotEqual(node_id(None, "box"), node_id(None, "other"))
        self.assertRegex(node_id("x", "box"), r"^pistatsd_[0-9a-f]{12}$")

    def test_dashboard_url(self) -> None:
        self.assertEqual(dashboard_url(["tcp:8888"], ["ssl:8443"], "pi"), "https://pi:8443/")
        self.assertEqual(
            dashboard_url(["tcp:port=8080:interface=0.0.0.0"], [], "pi"), "http://pi:8080/"
        )
        self.assertIsNone(dashboard_url(["tcp:8888:interface=127.0.0.1"], [], "pi"))
        self.assertIsNone(dashboard_url(["unix:/run/p.sock", "tcp:0"], [], "pi"))

    def test_override(self) -> None:
        device = this_device(
            ports=("tcp:8888",),
            tls=(),
            dashboard="https://stats.example",
            hostname=lambda: "pi",
            read=lambda path: None,
        )
        self.assertEqual(device.configuration_url, "https://stats.example")
        self.assertEqual(device.manufacturer, "unknown")
