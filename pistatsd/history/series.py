"""The stable series names: every number of a snapshot worth keeping, flattened.

A series name is the path to the number in the snapshot, joined with dots:
C{cpu.percent}, C{load.1}, C{net.eth0.rx_bytes_per_s},
C{filesystems./boot/firmware.percent}, C{sensors.fan.speed}.

Interface names (C{eth0.100}), mount points (C{/mnt/a.b}) and sensor names
(C{fan.speed}) may contain dots themselves, so names are read back by
L{split_name}: the part is what comes before the first dot; for the parts
with a per-item level (C{net}, C{filesystems}, C{disk_io}) the field is what
comes after the last dot and the item is everything in between; for
C{sensors} and C{fans} everything after the first dot is the item.  Field
names never contain dots, which is what makes this unambiguous.

Nulls, booleans (except the throttle flags, kept as 0/1) and non-finite
numbers are skipped: a series has a point only where the snapshot had a
number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

#: Parts whose series are C{part.item.field} (the item may contain dots).
ITEMIZED = ("net", "filesystems", "disk_io")
#: Parts whose series are C{part.item} (the item may contain dots).
KEYED = ("sensors", "fans")

#: Plain C{part.key} numbers: (series name, snapshot part, key in the part).
_SIMPLE: tuple[tuple[str, str, str], ...] = (
    ("cpu.percent", "cpu", "percent"),
    ("cpu.freq_mhz", "cpu", "freq_mhz"),
    ("memory.percent", "memory", "percent"),
    ("memory.available", "memory", "available"),
    ("swap.percent", "swap", "percent"),
    ("temperature.celsius", "temperature", "celsius"),
    ("disk.percent", "disk", "percent"),
    ("net.rx_bytes_per_s", "net", "rx_bytes_per_s"),
    ("net.tx_bytes_per_s", "net", "tx_bytes_per_s"),
    ("processes.total", "processes", "total"),
    ("processes.running", "processes", "running"),
    ("processes.zombie", "processes", "zombie"),
    ("throttled.core_volts", "throttled", "core_volts"),
    ("throttled.input_volts", "throttled", "input_volts"),
)

#: Rates and levels of each interface (counters since boot are not series).
INTERFACE_FIELDS = ("rx_bytes_per_s", "tx_bytes_per_s")
WIFI_FIELDS = ("signal_dbm", "link_quality")
FILESYSTEM_FIELDS = ("percent", "inodes_percent")
DISK_IO_FIELDS = (
    "read_bytes_per_s",
    "write_bytes_per_s",
    "reads_per_s",
    "writes_per_s",
    "busy_percent",
)
LOAD_PERIODS = ("1", "5", "15")


def _number(value: object) -> float | None:
    """C{value} as a finite float, or C{None} for nulls, booleans, text, NaN."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _part(snapshot: Mapping[str, object], name: str) -> Mapping[str, object]:
    section = snapshot.get(name)
    return section if isinstance(section, Mapping) else {}


def _put(out: dict[str, float], name: str, value: object) -> None:
    number = _number(value)
    if number is not None:
        out[name] = number


def _fields(out: dict[str, float], prefix: str, item: object, fields: Iterable[str]) -> None:
    if isinstance(item, Mapping):
        for field in fields:
            _put(out, f"{prefix}.{field}", item.get(field))


#: The snapshot flattened last, and its numbers.
_last: tuple[Mapping[str, object], Mapping[str, float]] | None = None


def flatten(snapshot: Mapping[str, object]) -> Mapping[str, float]:
    """Every number the dashboard or an alert may want, by stable series name.

    The sampler's observers (the history store, the alert rules) each
    flatten the same new snapshot in turn, on the reactor thread: the last
    answer is kept and given again for the same snapshot object, so each
    sample is flattened once.  The answer is shared: do not change it.
    """
    global _last
    last = _last
    if last is not None and last[0] is snapshot:
        return last[1]
    numbers = _flatten(snapshot)
    _last = (snapshot, numbers)
    return numbers


def _flatten(snapshot: Mapping[str, object]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, part, key in _SIMPLE:
        _put(out, name, _part(snapshot, part).get(key))
    load = _part(snapshot, "cpu").get("load")
    if isinstance(load, list | tuple):
        for period, value in zip(LOAD_PERIODS, load, strict=False):
            _put(out, f"load.{period}", value)
    interfaces = _part(snapshot, "net").get("interfaces")
    if isinstance(interfaces, Mapping):
        for iface, detail in interfaces.items():
            _fields(out, f"net.{iface}", detail, INTERFACE_FIELDS)
            if isinstance(detail, Mapping):
                _fields(out, f"net.{iface}", detail.get("wifi"), WIFI_FIELDS)
    filesystems = snapshot.get("filesystems")
    if isinstance(filesystems, list | tuple):
        for fs in filesystems:
            if isinstance(fs, Mapping) and isinstance(fs.get("mount"), str):
                _fields(out, f"filesystems.{fs['mount']}", fs, FILESYSTEM_FIELDS)
    for dev, detail in _part(snapshot, "disk_io").items():
        _fields(out, f"disk_io.{dev}", detail, DISK_IO_FIELDS)
    for sensor, reading in _part(snapshot, "sensors").items():
        if isinstance(reading, Mapping):
            _put(out, f"sensors.{sensor}", reading.get("value"))
    for fan, rpm in _part(snapshot, "fans").items():
        _put(out, f"fans.{fan}", rpm)
    now = _part(snapshot, "throttled").get("now")
    if isinstance(now, Mapping):
        for flag, value in now.items():
            if isinstance(value, bool):
                out[f"throttled.{flag}"] = 1.0 if value else 0.0
    return out


def split_name(name: str) -> tuple[str, str | None, str]:
    """C{(part, item, field)} of a series name; C{item} is C{None} for plain ones.

    C{"filesystems./boot/firmware.percent"} gives C{("filesystems",
    "/boot/firmware", "percent")}; C{"sensors.fan.speed"} gives
    C{("sensors", "fan.speed", "")}; C{"cpu.percent"} gives
    C{("cpu", None, "percent")}.

    @raise ValueError: for a name without a dot.
    """
    part, dot, rest = name.partition(".")
    if not dot or not rest:
        raise ValueError(f"not a series name: {name!r}")
    if part in KEYED:
        return part, rest, ""
    if part in ITEMIZED and "." in rest:
        item, _, field = rest.rpartition(".")
        return part, item, field
    return part, None, rest
