"""The one JSON object published on C{<prefix>/state}: the main values of a snapshot.

Flat where it can be, so a Home Assistant C{value_template} stays short
(C{value_json.cpu_percent}); filesystems, sensors and alerts are keyed by
their own names.  A value the snapshot does not have is C{null}, never a
made-up zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pistatsd.alerts.events import AlertStatus
from pistatsd.jsontypes import JSONMapping, JSONObject

#: The Raspberry Pi firmware flags published as binary sensors.
PI_FLAGS: tuple[str, ...] = ("under_voltage", "throttled")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _get(snapshot: JSONMapping, part: str, key: str) -> float | None:
    section = snapshot.get(part)
    if not isinstance(section, Mapping):
        return None
    return _number(section.get(key))


def _load(snapshot: JSONMapping, index: int) -> float | None:
    cpu = snapshot.get("cpu")
    load = cpu.get("load") if isinstance(cpu, Mapping) else None
    if isinstance(load, Sequence) and len(load) > index:
        return _number(load[index])
    return None


def filesystem_percents(snapshot: JSONMapping) -> dict[str, float | None]:
    """Each mounted filesystem's percent used, by mount point."""
    result: dict[str, float | None] = {}
    for entry in snapshot.get("filesystems") or ():
        if isinstance(entry, Mapping) and isinstance(entry.get("mount"), str):
            result[entry["mount"]] = _number(entry.get("percent"))
    return result


def sensor_values(snapshot: JSONMapping) -> dict[str, tuple[float | None, str]]:
    """Each user sensor's value and unit, by name."""
    result: dict[str, tuple[float | None, str]] = {}
    sensors = snapshot.get("sensors")
    if isinstance(sensors, Mapping):
        for name, reading in sensors.items():
            if isinstance(reading, Mapping):
                unit = reading.get("unit")
                text = unit if isinstance(unit, str) else ""
                result[str(name)] = (_number(reading.get("value")), text)
    return result


def pi_flags(snapshot: JSONMapping) -> dict[str, bool]:
    """The Pi's under-voltage and throttled flags now; empty on other machines."""
    throttled = snapshot.get("throttled")
    now = throttled.get("now") if isinstance(throttled, Mapping) else None
    if not isinstance(now, Mapping):
        return {}
    return {flag: bool(now.get(flag)) for flag in PI_FLAGS if flag in now}


def state_document(snapshot: JSONMapping, alerts: Sequence[AlertStatus]) -> JSONObject:
    """The state message for one snapshot and the alerts as they stand."""
    net = snapshot.get("net")
    uptime = _get(snapshot, "uptime", "seconds")
    document: JSONObject = {
        "time": _number(snapshot.get("timestamp")),
        "cpu_percent": _get(snapshot, "cpu", "percent"),
        "memory_percent": _get(snapshot, "memory", "percent"),
        "temperature": _get(snapshot, "temperature", "celsius"),
        "load_1": _load(snapshot, 0),
        "load_5": _load(snapshot, 1),
        "load_15": _load(snapshot, 2),
        "uptime": round(uptime) if uptime is not None else None,
        "net_rx_bytes_per_s": _get(snapshot, "net", "rx_bytes_per_s") if net else None,
        "net_tx_bytes_per_s": _get(snapshot, "net", "tx_bytes_per_s") if net else None,
        "filesystems": dict(filesystem_percents(snapshot)),
        "sensors": {name: value for name, (value, _) in sensor_values(snapshot).items()},
        "alerts": {alert.name: alert.state for alert in alerts},
    }
    document.update(pi_flags(snapshot))
    return document
