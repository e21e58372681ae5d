"""Cost of evaluating the alert rules on one sample (SPEC §13), on this machine.

    python bench/alerts.py [--samples 5000] [--rules 50] [--steady]

The engine gets C{--rules} rules (the eight built-ins and user rules: plain
thresholds, patterns over filesystems, interfaces and sensors, with hysteresis
and C{for}) and a realistic snapshot (8 filesystems, 6 interfaces, 4 disks,
12 sensors, Pi flags), whose values move every sample so that alerts go
pending, fire and clear as in a bad day.  It prints the mean, median, p99 and
worst time per sample, flattening the snapshot included (the engine does it
once per sample), and how many changes were made.  With C{--steady} the
values stay put (a quiet day: no changes).  Target: under 0.2 ms per sample.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from twisted.internet.task import Clock

from pistatsd.alerts.engine import AlertEngine
from pistatsd.alerts.tables import parse_rules

MOUNTS = ["/", "/boot/firmware", "/home", "/var/log", "/srv/data", "/mnt/usb", "/mnt/nas", "/tmp"]
IFACES = ["eth0", "wlan0", "eth0.100", "usb0", "tun0", "br-lan"]
DISKS = ["mmcblk0", "sda", "sdb", "nvme0n1"]
SENSORS = [f"sensor{i}" for i in range(12)]


def snapshot(n: int, steady: bool = False) -> dict[str, Any]:
    """Sample C{n}: every value moves, some across thresholds and back (unless C{steady})."""
    wave = 0.3 if steady else (n % 100) / 100.0
    return {
        "timestamp": 1_700_000_000.0 + n,
        "cpu": {"percent": 100 * wave, "freq_mhz": 1500.0, "load": [1.0 + wave, 1.0, 0.5]},
        "memory": {"percent": 60 + 35 * wave, "available": 1e9},
        "swap": {"percent": 10.0},
        "temperature": {"celsius": 60 + 25 * wave},
        "disk": {"percent": 50.0},
        "net": {
            "rx_bytes_per_s": 1e5 * wave,
            "tx_bytes_per_s": 1e4,
            "interfaces": {
                name: {
                    "rx_bytes_per_s": 1e5 * wave,
                    "tx_bytes_per_s": 1e3,
                    "wifi": {"signal_dbm": -50 - 40 * wave, "link_quality": 0.7}
                    if name == "wlan0"
                    else None,
                }
                for name in IFACES
            },
        },
        "filesystems": [
            {
                "mount": mount,
                "percent": 80 + 15 * wave if i % 2 else 40.0,
                "inodes_percent": 5.0,
                "read_only": i == 7 and wave > 0.5,
            }
            for i, mount in enumerate(MOUNTS)
        ],
        "disk_io": {
            name: {
                "read_bytes_per_s": 1e6 * wave,
                "write_bytes_per_s": 1e5,
                "reads_per_s": 10.0,
                "writes_per_s": 5.0,
                "busy_percent": 100 * wave,
            }
            for name in DISKS
        },
        "sensors": {
            name: {
                "value": 20 + 15 * wave,
                "unit": "C",
                "error": "timeout" if i == 0 and wave > 0.8 else None,
            }
            for i, name in enumerate(SENSORS)
        },
        "processes": {"total": 300, "running": 2, "zombie": 0},
        "throttled": {
            "now": {
                "under_voltage": wave > 0.9,
                "freq_capped": False,
                "throttled": wave > 0.95,
                "soft_temp_limit": False,
            }
        },
    }


def rules(count: int) -> dict[str, Any]:
    """C{count} rules in all: the built-ins (8) and user rules of every shape."""
    shapes: list[dict[str, Any]] = [
        {"series": "cpu.percent", "above": 90, "for": 5, "clear": 70},
        {"series": "load.1", "above": 1.8},
        {"series": "net.*.rx_bytes_per_s", "above": 90000, "clear": 50000},
        {"series": "disk_io.*.busy_percent", "above": 95, "for": 10},
        {"series": "sensors.*", "above": 33, "clear": 30},
        {"series": "temperature.celsius", "below": 61, "clear": 62},
        {"series": "swap.percent", "above": 50},
        {"series": "net.wlan0.signal_dbm", "below": -85},
        {"series": "filesystems.*.inodes_percent", "above": 90},
        {"series": "sensors.sensor3", "above": 34, "for": 3},
    ]
    tables = {f"user{i}": dict(shapes[i % len(shapes)]) for i in range(count - 8)}
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--steady", action="store_true", help="values that never cross")
    a = parser.parse_args()

    clock = Clock()
    changes: list[object] = []
    engine = AlertEngine(
        parse_rules(rules(a.rules)),
        clock=clock,
        listeners=(changes.append,),
        figures=lambda: {"influx.dropped": 0.0 if a.steady else float(clock.seconds() // 30)},
    )
    shots = [snapshot(n, a.steady) for n in range(a.samples)]
    times: list[float] = []
    for shot in shots:
        clock.advance(1)
        before = time.perf_counter()
        engine.observe(shot)
        times.append(time.perf_counter() - before)
    times.sort()
    ms = 1000.0
    print(f"rules: {len(engine.rules)}, alerts: {len(engine.current())}, samples: {a.samples}")
    print(
        f"per sample: mean {statistics.fmean(times) * ms:.3f} ms, "
        f"median {times[len(times) // 2] * ms:.3f} ms, "
        f"p99 {times[int(len(times) * 0.99)] * ms:.3f} ms, max {times[-1] * ms:.3f} ms"
    )
    print(f"changes: {len(changes)} ({len(changes) / a.samples:.2f} per sample)")


if __name__ == "__main__":
    main()
