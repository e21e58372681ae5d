"""Home Assistant MQTT discovery: one retained config message per entity of this machine.

Home Assistant reads C{<discovery-prefix>/<component>/<node>/<object>/config}
and makes an entity of each, grouped under one device by the device's
C{identifiers}.  The entities follow the snapshot: a filesystem mounted, a
sensor created or an alert defined appears at the next publication; one
that goes away is removed by an empty retained config on its topic (the
publisher sends those, from the difference between two sets of configs).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence

from attrs import frozen

from pistatsd.alerts.events import AlertStatus
from pistatsd.jsontypes import JSONMapping, JSONObject
from pistatsd.mqtt.state import filesystem_percents, pi_flags, sensor_values


@frozen
class Device:
    """The machine as Home Assistant's device registry shows it.

    @ivar node: the discovery topic's node level and the prefix of every
        C{unique_id}: stable across restarts (from the machine id).
    """

    node: str
    name: str
    model: str
    manufacturer: str
    sw_version: str
    configuration_url: str | None = None

    def document(self) -> JSONObject:
        """The C{device} mapping of every config message."""
        document: JSONObject = {
            "identifiers": [self.node],
            "name": self.name,
            "model": self.model,
            "manufacturer": self.manufacturer,
            "sw_version": self.sw_version,
        }
        if self.configuration_url is not None:
            document["configuration_url"] = self.configuration_url
        return document


@frozen
class Topics:
    """Where this machine publishes (prefix) and where Home Assistant looks (discovery)."""

    prefix: str
    discovery: str

    @property
    def state(self) -> str:
        """The state JSON's topic."""
        return f"{self.prefix}/state"

    @property
    def availability(self) -> str:
        """C{online} / C{offline}, the latter held by the broker as the last will."""
        return f"{self.prefix}/availability"


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def object_id(kind: str, name: str) -> str:
    """A topic-safe, stable id for a named thing (a mount point, a sensor, an alert).

    Names are made safe by replacing what a topic level or an entity id may
    not hold; a short hash of the original keeps C{/boot/efi} and
    C{/boot_efi} apart.
    """
    safe = _UNSAFE.sub("_", name).strip("_").lower()[:40] or "root"
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:6]
    return f"{kind}_{safe}_{digest}"


def _key(name: str) -> str:
    """A Jinja subscript for C{name} (JSON string syntax is valid Jinja)."""
    return "[" + json.dumps(name) + "]"


#: Units Home Assistant knows for its temperature device class.
_TEMPERATURE_UNITS = {"C": "°C", "°C": "°C", "F": "°F", "°F": "°F", "K": "K"}


def _sensor(
    device: Device,
    topics: Topics,
    object_name: str,
    name: str,
    value: str,
    *,
    unit: str | None = None,
    device_class: str | None = None,
    state_class: str | None = "measurement",
    icon: str | None = None,
    precision: int | None = None,
    entity_category: str | None = None,
) -> tuple[str, JSONObject]:
    config: JSONObject = {
        "name": name,
        "unique_id": f"{device.node}_{object_name}",
        "state_topic": topics.state,
        "value_template": "{{ value_json" + value + " }}",
        "availability_topic": topics.availability,
        "device": device.document(),
    }
    if unit:
        config["unit_of_measurement"] = unit
    if device_class is not None:
        config["device_class"] = device_class
    if state_class is not None:
        config["state_class"] = state_class
    if icon is not None:
        config["icon"] = icon
    if precision is not None:
        config["suggested_display_precision"] = precision
    if entity_category is not None:
        config["entity_category"] = entity_category
    return f"{topics.discovery}/sensor/{device.node}/{object_name}/config", config


def _problem(
    device: Device, topics: Topics, object_name: str, name: str, condition: str
) -> tuple[str, JSONObject]:
    config: JSONObject = {
        "name": name,
        "unique_id": f"{device.node}_{object_name}",
        "state_topic": topics.state,
        "value_template": "{{ 'ON' if " + condition + " else 'OFF' }}",
        "payload_on": "ON",
        "payload_off": "OFF",
        "device_class": "problem",
        "availability_topic": topics.availability,
        "device": device.document(),
    }
    return f"{topics.discovery}/binary_sensor/{device.node}/{object_name}/config", config


def discovery_configs(
    device: Device,
    topics: Topics,
    snapshot: JSONMapping,
    alerts: Sequence[AlertStatus],
) -> dict[str, JSONObject]:
    """Every entity's config topic and payload for this snapshot and these alerts."""
    entries = [
        _sensor(device, topics, "cpu", "CPU", ".cpu_percent", unit="%", icon="mdi:cpu-64-bit"),
        _sensor(device, topics, "memory", "Memory", ".memory_percent", unit="%", icon="mdi:memory"),
        _sensor(
            device,
            topics,
            "temperature",
            "Temperature",
            ".temperature",
            unit="°C",
            device_class="temperature",
        ),
        *(
            _sensor(device, topics, f"load_{n}", f"Load {n} min", f".load_{n}", precision=2)
            for n in (1, 5, 15)
        ),
        _sensor(
            device,
            topics,
            "uptime",
            "Uptime",
            ".uptime",
            unit="s",
            device_class="duration",
            entity_category="diagnostic",
        ),
        *(
            _sensor(
                device,
                topics,
                f"net_{direction}",
                f"Network {label}",
                f".net_{direction}_bytes_per_s",
                unit="B/s",
                device_class="data_rate",
            )
            for direction, label in (("rx", "received"), ("tx", "sent"))
        ),
    ]
    for mount in filesystem_percents(snapshot):
        entries.append(
            _sensor(
                device,
                topics,
                object_id("fs", mount),
                f"Filesystem {mount}",
                ".filesystems" + _key(mount),
                unit="%",
                icon="mdi:harddisk",
            )
        )
    for name, (_, unit) in sensor_values(snapshot).items():
        temperature = _TEMPERATURE_UNITS.get(unit)
        entries.append(
            _sensor(
                device,
                topics,
                object_id("sensor", name),
                f"Sensor {name}",
                ".sensors" + _key(name),
                unit=temperature or unit or None,
                device_class="temperature" if temperature else None,
            )
        )
    flags = pi_flags(snapshot)
    if "under_voltage" in flags:
        entries.append(
            _problem(device, topics, "under_voltage", "Under-voltage", "value_json.under_voltage")
        )
    if "throttled" in flags:
        entries.append(_problem(device, topics, "throttled", "Throttled", "value_json.throttled"))
    for alert in alerts:
        entries.append(
            _problem(
                device,
                topics,
                object_id("alert", alert.name),
                f"Alert {alert.name}",
                "value_json.alerts" + _key(alert.name) + " == 'firing'",
            )
        )
    return dict(entries)


def encode(config: JSONObject) -> bytes:
    """A config message's payload: compact, keys sorted, so equal configs are equal bytes."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )
