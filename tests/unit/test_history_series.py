"""Series names of the durable history (SPEC §12): flatten() and split_name()."""

from __future__ import annotations

import math

from twisted.trial.unittest import SynchronousTestCase

from pistatsd.history.series import flatten, split_name

#: A whole-machine snapshot (SPEC §3 and §11), with nulls and odd names.
SNAPSHOT: dict[str, object] = {
    "timestamp": 1732240000.0,
    "hostname": "pi",
    "cpu": {"percent": 12.5, "per_cpu": [10.0, 15.0], "load": [0.1, 0.2, 0.3], "freq_mhz": 1500},
    "temperature": {"celsius": 48.3, "sensors": {"cpu_thermal": 48.3}},
    "memory": {"total": 100, "available": 60, "used": 40, "percent": 37.2},
    "swap": {"total": 0, "used": 0, "percent": 0.0},
    "uptime": {"seconds": 12.0, "boot_time": 1.0},
    "disk": {"path": "/", "percent": 24.6},
    "net": {
        "bytes_sent": 5,
        "rx_bytes_per_s": 100.0,
        "tx_bytes_per_s": None,
        "interfaces": {
            "eth0": {"up": True, "rx_bytes_per_s": 10.0, "tx_bytes_per_s": 20.0, "rx_errors": 3},
            "eth0.100": {"rx_bytes_per_s": 1.0, "tx_bytes_per_s": 2.0},
            "wlan0": {
                "rx_bytes_per_s": None,
                "tx_bytes_per_s": 4.0,
                "wifi": {"signal_dbm": -55, "link_quality": 0.71},
            },
        },
    },
    "filesystems": [
        {"mount": "/", "percent": 50.0, "inodes_percent": 3.0, "read_only": False},
        {"mount": "/boot/firmware", "percent": 20.0, "inodes_percent": None},
        {"mount": "/mnt/a.b", "percent": 1.5, "error": "timeout"},
    ],
    "disk_io": {
        "mmcblk0": {
            "read_bytes_per_s": 1.0,
            "write_bytes_per_s": 2.0,
            "reads_per_s": 3.0,
            "writes_per_s": 4.0,
            "busy_percent": 5.0,
            "written_bytes": 123,
        }
    },
    "processes": {"total": 300, "running": 2, "zombie": 0, "top_cpu": []},
    "fans": {"pwmfan/fan1": 2400},
    "sensors": {
        "fan.speed": {"value": 1200.0, "unit": "rpm", "error": None},
        "broken": {"value": None, "unit": "", "error": "timeout"},
    },
    "throttled": {
        "raw": "0x50005",
        "now": {"under_voltage": True, "freq_capped": False},
        "since_boot": {"under_voltage": True},
        "core_volts": 1.2,
    },
}


class FlattenTests(SynchronousTestCase):
    def test_every_number_by_its_stable_name(self) -> None:
        self.assertEqual(
            flatten(SNAPSHOT),
            {
                "cpu.percent": 12.5,
                "cpu.freq_mhz": 1500.0,
                "load.1": 0.1,
                "load.5": 0.2,
                "load.15": 0.3,
                "memory.percent": 37.2,
                "memory.available": 60.0,
                "swap.percent": 0.0,
                "temperature.celsius": 48.3,
                "disk.percent": 24.6,
                "net.rx_bytes_per_s": 100.0,
                "net.eth0.rx_bytes_per_s": 10.0,
                "net.eth0.tx_bytes_per_s": 20.0,
                "net.eth0.100.rx_bytes_per_s": 1.0,
                "net.eth0.100.tx_bytes_per_s": 2.0,
                "net.wlan0.tx_bytes_per_s": 4.0,
                "net.wlan0.signal_dbm": -55.0,
                "net.wlan0.link_quality": 0.71,
                "filesystems./.percent": 50.0,
                "filesystems./.inodes_percent": 3.0,
                "filesystems./boot/firmware.percent": 20.0,
                "filesystems./mnt/a.b.percent": 1.5,
                "disk_io.mmcblk0.read_bytes_per_s": 1.0,
                "disk_io.mmcblk0.write_bytes_per_s": 2.0,
                "disk_io.mmcblk0.reads_per_s": 3.0,
                "disk_io.mmcblk0.writes_per_s": 4.0,
                "disk_io.mmcblk0.busy_percent": 5.0,
                "processes.total": 300.0,
                "processes.running": 2.0,
                "processes.zombie": 0.0,
                "fans.pwmfan/fan1": 2400.0,
                "sensors.fan.speed": 1200.0,
                "throttled.under_voltage": 1.0,
                "throttled.freq_capped": 0.0,
                "throttled.core_volts": 1.2,
            },
        )

    def test_nulls_and_non_numbers_are_skipped(self) -> None:
        numbers = flatten(SNAPSHOT)
        self.assertNotIn("net.tx_bytes_per_s", numbers)  # null
        self.assertNotIn("net.wlan0.rx_bytes_per_s", numbers)  # null
        self.assertNotIn("sensors.broken", numbers)  # null value
        self.assertNotIn("net.eth0.rx_errors", numbers)  # a counter, not a series

    def test_warming_up_sample_and_odd_values(self) -> None:
        numbers = flatten(
            {
                "cpu": {"percent": None, "load": [math.nan, "x", True]},
                "memory": {"percent": math.inf},
                "swap": {"percent": True},
                "net": ["not", "a", "mapping"],
                "filesystems": [{"percent": 5.0}, "junk", {"mount": 7, "percent": 1.0}],
                "throttled": {"now": {"under_voltage": 1}},
            }
        )
        self.assertEqual(numbers, {})

    def test_empty_snapshot(self) -> None:
        self.assertEqual(flatten({}), {})


class OnceASampleTests(SynchronousTestCase):
    """The history and the alerts flatten the same snapshot: it is done once."""

    def test_the_same_snapshot_is_flattened_once(self) -> None:
        snapshot = {"cpu": {"percent": 12.5}}
        first = flatten(snapshot)
        self.assertIs(flatten(snapshot), first)

    def test_a_new_snapshot_is_flattened_anew(self) -> None:
        first = flatten({"cpu": {"percent": 12.5}})
        second = flatten({"cpu": {"percent": 50.0}})
        self.assertEqual((first["cpu.percent"], second["cpu.percent"]), (12.5, 50.0))
        # Equal but not the same object: its own answer (a reused id cannot fool it).
        self.assertIsNot(flatten({"cpu": {"percent": 50.0}}), second)


class SplitNameTests(SynchronousTestCase):
    def test_items_with_dots(self) -> None:
        self.assertEqual(
            split_name("filesystems./boot/firmware.percent"),
            ("filesystems", "/boot/firmware", "percent"),
        )
        self.assertEqual(
            split_name("filesystems./mnt/a.b.percent"), ("filesystems", "/mnt/a.b", "percent")
        )
        self.assertEqual(
            split_name("net.eth0.100.rx_bytes_per_s"), ("net", "eth0.100", "rx_bytes_per_s")
        )
        self.assertEqual(split_name("sensors.fan.speed"), ("sensors", "fan.speed", ""))
        self.assertEqual(split_name("fans.pwmfan/fan1"), ("fans", "pwmfan/fan1", ""))

    def test_plain(self) -> None:
        self.assertEqual(split_name("cpu.percent"), ("cpu", None, "percent"))
        self.assertEqual(split_name("load.15"), ("load", None, "15"))
        self.assertEqual(split_name("net.rx_bytes_per_s"), ("net", None, "rx_bytes_per_s"))

    def test_every_flattened_name_splits_back(self) -> None:
        for name in flatten(SNAPSHOT):
            part, item, field = split_name(name)
            rebuilt = ".".join(x for x in (part, item, field) if x)
            self.assertEqual(rebuilt, name)

    def test_bad_names(self) -> None:
        for name in ("", "cpu", "cpu."):
            self.assertRaises(ValueError, split_name, name)
