"""Prometheus families for the whole machine (SPEC 11), read from one snapshot at scrape time.

Naming follows Prometheus' conventions, checked by C{promtool check metrics}:
base units (C{_bytes}, C{_hertz}, C{_volts}, C{_seconds}), counters end in
C{_total}, and where the kernel keeps a counter (bytes sent and received, bytes
written to a disk) the counter is exposed and PromQL's C{rate()} makes the
rate.  Only where no counter reaches the snapshot (disk reads, I/O busy
time) is pistatsd's own per-second rate exposed, as a gauge.

Every family copes with its part being absent, null, empty or partly null
(the first sample has no rates; a file system that timed out has no sizes):
what is unknown is left out, never exported as 0.  Label values are names
from the machine (mount points with spaces, interface names with quotes,
mount points that are not valid UTF-8); prometheus_client escapes quotes,
backslashes and newlines, and L{label} makes undecodable bytes printable so
one odd name cannot make the whole scrape fail to encode.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pistatsd.jsonread import mapping as _mapping
from pistatsd.jsonread import number
from pistatsd.jsonread import sequence as _sequence
from pistatsd.metric_families import counter_family, gauge_family
from pistatsd.printable import utf8_safe

if TYPE_CHECKING:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

Snapshot = Mapping[str, Any]

_FILESYSTEM_LABELS = ["mount", "device", "fstype"]
_THROTTLE_WHEN = ("now", "since_boot")
_PRE_EOL_STATES = ("normal", "warning", "urgent")
#: How many processes each top list has in the snapshot (SPEC 11).
TOP_PROCESSES = 5


def label(value: object) -> str:
    """A label value that always encodes as UTF-8 (see L{pistatsd.printable})."""
    return utf8_safe(value)


class _Family:
    """One family being filled: skips unknown values and repeated label sets.

    A repeated label set (two entries the collectors failed to tell apart)
    would be a duplicate series, which Prometheus rejects for the whole
    scrape; the first one wins.
    """

    def __init__(self, family: GaugeMetricFamily | CounterMetricFamily) -> None:
        self.family = family
        self._seen: set[tuple[str, ...]] = set()

    def add(self, labels: Sequence[object], value: object) -> None:
        value = number(value)
        key = tuple(label(item) for item in labels)
        if value is None or key in self._seen:
            return
        self._seen.add(key)
        self.family.add_metric(list(key), value)

    def __bool__(self) -> bool:
        return bool(self.family.samples)


def gauge(name: str, documentation: str, labels: Sequence[str]) -> _Family:
    """A labelled gauge family to fill."""
    return _Family(gauge_family(name, documentation, labels=list(labels)))


def counter(name: str, documentation: str, labels: Sequence[str]) -> _Family:
    """A labelled counter family to fill (C{_total} is added on the way out)."""
    return _Family(counter_family(name, documentation, labels=list(labels)))


def _filled(families: Iterable[_Family]) -> Iterator[Metric]:
    """The families that got at least one sample: an empty family says nothing."""
    for family in families:
        if family:
            yield family.family


def machine_families(snapshot: Snapshot) -> Iterator[Metric]:
    """Every SPEC 11 family the snapshot has data for."""
    yield from _cpu_frequency(snapshot)
    yield from _temperatures(_mapping(_mapping(snapshot.get("temperature")).get("sensors")))
    yield from _network(_mapping(snapshot.get("net")))
    yield from _filesystems(_sequence(snapshot.get("filesystems")))
    yield from _disk_io(_mapping(snapshot.get("disk_io")))
    yield from _processes(_mapping(snapshot.get("processes")))
    yield from _fans(_mapping(snapshot.get("fans")))
    yield from _power(snapshot.get("throttled"))


def _cpu_frequency(snapshot: Snapshot) -> Iterator[Metric]:
    mhz = number(_mapping(snapshot.get("cpu")).get("freq_mhz"))
    if mhz is not None:
        yield gauge_family(
            "pistatsd_cpu_frequency_hertz", "Current CPU clock (cpufreq).", value=mhz * 1e6
        )


def _temperatures(sensors: Mapping[str, Any]) -> Iterator[Metric]:
    family = gauge("pistatsd_temperature_sensor_celsius", "Each temperature sensor.", ["sensor"])
    for name, celsius in sorted(sensors.items()):
        family.add([name], celsius)
    yield from _filled([family])


#: (snapshot key, metric name, help) of the per-interface counters.
_INTERFACE_COUNTERS = (
    ("rx_bytes", "pistatsd_network_receive_bytes", "Bytes received, by interface."),
    ("tx_bytes", "pistatsd_network_transmit_bytes", "Bytes sent, by interface."),
    ("rx_errors", "pistatsd_network_receive_errors", "Receive errors, by interface."),
    ("tx_errors", "pistatsd_network_transmit_errors", "Transmit errors, by interface."),
    ("rx_drops", "pistatsd_network_receive_drop", "Received packets dropped, by interface."),
    ("tx_drops", "pistatsd_network_transmit_drop", "Outgoing packets dropped, by interface."),
)


def _network(net: Mapping[str, Any]) -> Iterator[Metric]:
    totals = (
        counter(
            "pistatsd_network_physical_receive_bytes",
            "Bytes received over the physical interfaces (each byte counted once).",
            [],
        ),
        counter(
            "pistatsd_network_physical_transmit_bytes",
            "Bytes sent over the physical interfaces (each byte counted once).",
            [],
        ),
    )
    totals[0].add([], net.get("bytes_recv"))
    totals[1].add([], net.get("bytes_sent"))
    yield from _filled(totals)

    interfaces = _mapping(net.get("interfaces"))
    counters = {key: counter(name, doc, ["interface"]) for key, name, doc in _INTERFACE_COUNTERS}
    up = gauge("pistatsd_network_up", "1 when the interface is up.", ["interface"])
    virtual = gauge(
        "pistatsd_network_virtual",
        "1 for a virtual interface (bridge, veth, bond, ...), left out of the physical totals.",
        ["interface"],
    )
    speed = gauge(
        "pistatsd_network_speed_bytes",
        "Link speed in bytes per second, where the driver reports one.",
        ["interface"],
    )
    signal = gauge("pistatsd_wifi_signal_dbm", "Wi-Fi signal level.", ["interface"])
    quality = gauge(
        "pistatsd_wifi_link_quality_ratio", "Wi-Fi link quality, 0 to 1.", ["interface"]
    )
    for name, interface in sorted(interfaces.items()):
        if not isinstance(interface, Mapping):
            continue
        for key, family in counters.items():
            family.add([name], interface.get(key))
        up.add([name], _flag(interface.get("up")))
        virtual.add([name], _flag(interface.get("virtual")))
        mbps = number(interface.get("speed_mbps"))
        if mbps is not None and mbps > 0:
            speed.add([name], mbps * 1e6 / 8)
        wifi = _mapping(interface.get("wifi"))
        signal.add([name], wifi.get("signal_dbm"))
        quality.add([name], wifi.get("link_quality"))
    yield from _filled([*counters.values(), up, virtual, speed, signal, quality])


def _flag(value: object) -> float | None:
    """A JSON boolean as 1 or 0; None for anything else (unknown stays unknown)."""
    return float(value) if isinstance(value, bool) else None


def _filesystems(filesystems: Sequence[Any]) -> Iterator[Metric]:
    size = gauge("pistatsd_filesystem_size_bytes", "File system size.", _FILESYSTEM_LABELS)
    avail = gauge(
        "pistatsd_filesystem_avail_bytes",
        "Space left for unprivileged users.",
        _FILESYSTEM_LABELS,
    )
    used = gauge("pistatsd_filesystem_used_bytes", "Space in use.", _FILESYSTEM_LABELS)
    percent = gauge(
        "pistatsd_filesystem_used_percent",
        "Space in use, as df counts it: used / (used + avail).",
        _FILESYSTEM_LABELS,
    )
    inodes = gauge("pistatsd_filesystem_inodes_used_percent", "Inodes in use.", _FILESYSTEM_LABELS)
    read_only = gauge(
        "pistatsd_filesystem_read_only", "1 when mounted read-only.", _FILESYSTEM_LABELS
    )
    error = gauge(
        "pistatsd_filesystem_device_error",
        "1 when the file system could not be measured (e.g. a hung network mount).",
        _FILESYSTEM_LABELS,
    )
    for entry in filesystems:
        if not isinstance(entry, Mapping) or not entry.get("mount"):
            continue
        labels = [entry.get("mount"), entry.get("device"), entry.get("fstype")]
        error.add(labels, 1.0 if entry.get("error") else 0.0)
        size.add(labels, entry.get("total"))
        avail.add(labels, entry.get("free"))
        used.add(labels, entry.get("used"))
        percent.add(labels, entry.get("percent"))
        inodes.add(labels, entry.get("inodes_percent"))
        read_only.add(labels, _flag(entry.get("read_only")))
    yield from _filled([size, avail, used, percent, inodes, read_only, error])


#: (snapshot key, metric name, help) of the per-disk rates that have no counter.
_DISK_RATES = (
    ("read_bytes_per_s", "pistatsd_disk_read_bytes_per_second", "Bytes read per second."),
    ("write_bytes_per_s", "pistatsd_disk_write_bytes_per_second", "Bytes written per second."),
    ("reads_per_s", "pistatsd_disk_reads_per_second", "Reads completed per second."),
    ("writes_per_s", "pistatsd_disk_writes_per_second", "Writes completed per second."),
    ("busy_percent", "pistatsd_disk_busy_percent", "Time the disk was busy."),
)


def _disk_io(devices: Mapping[str, Any]) -> Iterator[Metric]:
    written = counter(
        "pistatsd_disk_written_bytes",
        "Bytes written to the disk since boot (SD card wear).",
        ["device"],
    )
    rates = [
        gauge(name, doc + " Over the last sample.", ["device"]) for _, name, doc in _DISK_RATES
    ]
    life = gauge(
        "pistatsd_disk_life_time_used_percent",
        "eMMC estimate of its life used (10 % steps), by memory type (a, b).",
        ["device", "type"],
    )
    pre_eol = gauge(
        "pistatsd_disk_pre_eol",
        "eMMC reserved blocks state: 1 for the current one (normal, warning, urgent).",
        ["device", "state"],
    )
    for name, device in sorted(devices.items()):
        if not isinstance(device, Mapping):
            continue
        written.add([name], device.get("written_bytes"))
        for (key, _, _), family in zip(_DISK_RATES, rates, strict=True):
            family.add([name], device.get(key))
        health = _mapping(device.get("health"))
        for kind, value in zip("ab", _sequence(health.get("life_time_percent")), strict=False):
            life.add([name, kind], value)
        state = health.get("pre_eol")
        if state in _PRE_EOL_STATES:
            for candidate in _PRE_EOL_STATES:
                pre_eol.add([name, candidate], 1.0 if candidate == state else 0.0)
    yield from _filled([written, *rates, life, pre_eol])


def _processes(processes: Mapping[str, Any]) -> Iterator[Metric]:
    counts = gauge(
        "pistatsd_processes",
        "Processes by state; the states add up to all processes.",
        ["state"],
    )
    total = number(processes.get("total"))
    running = number(processes.get("running"))
    zombie = number(processes.get("zombie"))
    counts.add(["running"], running)
    counts.add(["zombie"], zombie)
    if total is not None and running is not None and zombie is not None:
        counts.add(["other"], max(0.0, total - running - zombie))
    top_cpu = gauge(
        "pistatsd_top_process_cpu_percent",
        f"CPU use of the {TOP_PROCESSES} busiest processes, by rank.",
        ["rank", "pid", "name"],
    )
    top_memory = gauge(
        "pistatsd_top_process_resident_memory_bytes",
        f"Resident memory of the {TOP_PROCESSES} largest processes, by rank.",
        ["rank", "pid", "name"],
    )
    for family, key, value in (
        (top_cpu, "top_cpu", "cpu_percent"),
        (top_memory, "top_memory", "rss"),
    ):
        entries = _sequence(processes.get(key))[:TOP_PROCESSES]
        for rank, entry in enumerate(entries, 1):
            if isinstance(entry, Mapping):
                family.add([rank, entry.get("pid"), entry.get("name")], entry.get(value))
    yield from _filled([counts, top_cpu, top_memory])


def _fans(fans: Mapping[str, Any]) -> Iterator[Metric]:
    family = gauge("pistatsd_fan_rpm", "Fan speed, by hwmon chip and sensor.", ["chip", "sensor"])
    for key, rpm in sorted(fans.items()):
        chip, _, sensor = str(key).partition("/")
        family.add([chip, sensor], rpm)
    yield from _filled([family])


def _power(throttled: object) -> Iterator[Metric]:
    """The Raspberry Pi firmware flags, their last change, and the voltages."""
    if not isinstance(throttled, Mapping):
        return
    flags = gauge("pistatsd_throttled", "Raspberry Pi firmware flags.", ["flag", "when"])
    for when in _THROTTLE_WHEN:
        for flag, value in sorted(_mapping(throttled.get(when)).items()):
            flags.add([flag, when], _flag(value))
    changed = gauge(
        "pistatsd_throttled_changed_timestamp_seconds",
        "When each firmware flag last changed (epoch seconds), since pistatsd started.",
        ["flag"],
    )
    for flag, value in sorted(_mapping(throttled.get("changed")).items()):
        changed.add([flag], value)
    volts = [
        gauge("pistatsd_core_volts", "SoC core voltage.", []),
        gauge("pistatsd_input_volts", "Supply (5 V input) voltage.", []),
    ]
    volts[0].add([], throttled.get("core_volts"))
    volts[1].add([], throttled.get("input_volts"))
    yield from _filled([flags, changed, *volts])
