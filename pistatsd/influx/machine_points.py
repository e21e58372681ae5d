"""InfluxDB points for the whole machine (SPEC 11), under Telegraf's names.

A Grafana dashboard built for Telegraf's system inputs reads these as it
reads Telegraf's own: the same measurements (C{net}, C{disk}, C{diskio},
C{processes}, C{temp}), tags and field names, and the same field types
(counters and sizes as integers, percentages as floats).  What pistatsd
has and Telegraf does not (per-second rates, eMMC health, fans, the
Raspberry Pi's firmware flags and voltages) goes out as extra fields or in
measurements of its own.  What pistatsd does not have (Telegraf's packet
counts per interface, inode counts, read counters) is left out rather
than made up; a null reading (the first sample's rates) is left out of its
point, and a point with no field left is not written.

InfluxDB fixes a field's type on first write and refuses a batch that
disagrees, so each field is always written as the same type, whatever
psutil or sysfs handed over this time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pistatsd.influx.lineprotocol import FieldValue, Point
from pistatsd.jsonread import mapping as _mapping
from pistatsd.jsonread import number as real
from pistatsd.jsonread import sequence as _sequence
from pistatsd.printable import utf8_safe

Snapshot = Mapping[str, Any]
Fields = list[tuple[str, FieldValue | None]]

_THROTTLE_FLAGS = ("under_voltage", "freq_capped", "throttled", "soft_temp_limit")


def integer(value: object) -> int | None:
    """A count or size as an integer field; None for null, booleans and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return int(value)


def _point(
    measurement: str, tags: Sequence[tuple[str, str | None]], fields: Fields, timestamp: int
) -> list[Point]:
    point = Point.of(measurement, tags, fields, timestamp)
    return [] if point is None else [point]


def _name(value: object) -> str | None:
    """A tag value from the machine (a name) that encodes as UTF-8; None for a non-string."""
    return utf8_safe(value) if isinstance(value, str) else None


def machine_points(snapshot: Snapshot, host: str, timestamp: int) -> list[Point]:
    """Every SPEC 11 point the snapshot has data for."""
    return [
        *net_points(_mapping(snapshot.get("net")), host, timestamp),
        *disk_points(_sequence(snapshot.get("filesystems")), host, timestamp),
        *diskio_points(_mapping(snapshot.get("disk_io")), host, timestamp),
        *processes_points(_mapping(snapshot.get("processes")), host, timestamp),
        *temp_points(
            _mapping(_mapping(snapshot.get("temperature")).get("sensors")), host, timestamp
        ),
        *fan_points(_mapping(snapshot.get("fans")), host, timestamp),
        *throttled_points(snapshot.get("throttled"), host, timestamp),
    ]


def net_points(net: Mapping[str, Any], host: str, timestamp: int) -> list[Point]:
    """C{net,host=H,interface=I bytes_recv=..i,bytes_sent=..i,err_in=..i,...}: Telegraf's
    C{inputs.net}, plus C{speed} (Mbit/s), C{bytes_recv_per_s} and C{bytes_sent_per_s}."""
    points: list[Point] = []
    for name, interface in sorted(_mapping(net.get("interfaces")).items()):
        if not isinstance(interface, Mapping):
            continue
        speed = integer(interface.get("speed_mbps"))
        fields: Fields = [
            ("bytes_recv", integer(interface.get("rx_bytes"))),
            ("bytes_sent", integer(interface.get("tx_bytes"))),
            ("err_in", integer(interface.get("rx_errors"))),
            ("err_out", integer(interface.get("tx_errors"))),
            ("drop_in", integer(interface.get("rx_drops"))),
            ("drop_out", integer(interface.get("tx_drops"))),
            ("speed", speed if speed is not None and speed > 0 else None),
            ("bytes_recv_per_s", real(interface.get("rx_bytes_per_s"))),
            ("bytes_sent_per_s", real(interface.get("tx_bytes_per_s"))),
        ]
        points += _point("net", (("host", host), ("interface", _name(name))), fields, timestamp)
    return points


def _device_name(device: object) -> str | None:
    """Telegraf's C{device} tag: the device file without C{/dev/} (C{mmcblk0p2})."""
    if not isinstance(device, str):
        return None
    return utf8_safe(device.removeprefix("/dev/"))


def disk_points(filesystems: Sequence[Any], host: str, timestamp: int) -> list[Point]:
    """C{disk,host=H,path=P,device=D,fstype=T,mode=rw|ro total=..i,free=..i,used=..i,
    used_percent=..,inodes_used_percent=..}: Telegraf's C{inputs.disk}, one per file system
    that could be measured (one that timed out has no sizes to write)."""
    points: list[Point] = []
    for entry in filesystems:
        if not isinstance(entry, Mapping) or entry.get("error"):
            continue
        read_only = entry.get("read_only")
        mode = "ro" if read_only is True else "rw" if read_only is False else None
        tags = (
            ("host", host),
            ("path", _name(entry.get("mount"))),
            ("device", _device_name(entry.get("device"))),
            ("fstype", _name(entry.get("fstype"))),
            ("mode", mode),
        )
        fields: Fields = [
            ("total", integer(entry.get("total"))),
            ("free", integer(entry.get("free"))),
            ("used", integer(entry.get("used"))),
            ("used_percent", real(entry.get("percent"))),
            ("inodes_used_percent", real(entry.get("inodes_percent"))),
        ]
        points += _point("disk", tags, fields, timestamp)
    return points


def diskio_points(devices: Mapping[str, Any], host: str, timestamp: int) -> list[Point]:
    """C{diskio,host=H,name=D write_bytes=..i,...}: Telegraf's C{inputs.diskio} where the
    names overlap (C{write_bytes}, the bytes written since boot), pistatsd's rates beside."""
    points: list[Point] = []
    for name, device in sorted(devices.items()):
        if not isinstance(device, Mapping):
            continue
        health = _mapping(device.get("health"))
        life = _sequence(health.get("life_time_percent"))
        pre_eol = health.get("pre_eol")
        fields: Fields = [
            ("write_bytes", integer(device.get("written_bytes"))),
            ("read_bytes_per_s", real(device.get("read_bytes_per_s"))),
            ("write_bytes_per_s", real(device.get("write_bytes_per_s"))),
            ("reads_per_s", real(device.get("reads_per_s"))),
            ("writes_per_s", real(device.get("writes_per_s"))),
            ("busy_percent", real(device.get("busy_percent"))),
            ("life_time_used_percent_a", integer(life[0]) if len(life) > 0 else None),
            ("life_time_used_percent_b", integer(life[1]) if len(life) > 1 else None),
            ("pre_eol", pre_eol if isinstance(pre_eol, str) and pre_eol else None),
        ]
        points += _point("diskio", (("host", host), ("name", _name(name))), fields, timestamp)
    return points


def processes_points(processes: Mapping[str, Any], host: str, timestamp: int) -> list[Point]:
    """C{processes,host=H total=..i,running=..i,zombies=..i}: Telegraf's C{inputs.processes}."""
    fields: Fields = [
        ("total", integer(processes.get("total"))),
        ("running", integer(processes.get("running"))),
        ("zombies", integer(processes.get("zombie"))),
    ]
    return _point("processes", (("host", host),), fields, timestamp)


def temp_points(sensors: Mapping[str, Any], host: str, timestamp: int) -> list[Point]:
    """C{temp,host=H,sensor=S temp=..}: Telegraf's C{inputs.temp}, one per sensor."""
    points: list[Point] = []
    for name, celsius in sorted(sensors.items()):
        points += _point(
            "temp", (("host", host), ("sensor", _name(name))), [("temp", real(celsius))], timestamp
        )
    return points


def fan_points(fans: Mapping[str, Any], host: str, timestamp: int) -> list[Point]:
    """C{fan,host=H,chip=C,sensor=S rpm=..}: one per fan (C{"chip/label"} in the snapshot)."""
    points: list[Point] = []
    for key, rpm in sorted(fans.items()):
        chip, _, sensor = str(key).partition("/")
        tags = (("host", host), ("chip", _name(chip)), ("sensor", _name(sensor)))
        points += _point("fan", tags, [("rpm", real(rpm))], timestamp)
    return points


def throttled_points(throttled: object, host: str, timestamp: int) -> list[Point]:
    """C{throttled,host=H under_voltage=true,...,under_voltage_since_boot=..,core_volts=..}:
    the Raspberry Pi's firmware flags (booleans) and voltages; nothing off a Pi."""
    if not isinstance(throttled, Mapping):
        return []
    now, boot = _mapping(throttled.get("now")), _mapping(throttled.get("since_boot"))
    fields: Fields = []
    for flag in _THROTTLE_FLAGS:
        fields.append((flag, _boolean(now.get(flag))))
        fields.append((f"{flag}_since_boot", _boolean(boot.get(flag))))
    fields.append(("core_volts", real(throttled.get("core_volts"))))
    fields.append(("input_volts", real(throttled.get("input_volts"))))
    return _point("throttled", (("host", host),), fields, timestamp)


def _boolean(value: object) -> bool | None:
    return value if isinstance(value, bool) else None
