"""/metrics for the whole machine (SPEC 11): names, labels, values, and the real promtool.

The fixture snapshots (L{tests.machine_snapshots}) go through the daemon's
own registry (L{pistatsd.metrics.registry_of} with the daemon's collectors); the
text is parsed back with prometheus_client's parser for exact values, and
linted with the real C{promtool check metrics}, whose every word of output
counts as a failure.  A last test lints a real daemon's C{/metrics}.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.metrics import (
    ConnectionMetrics,
    InfluxMetrics,
    RequestCounter,
    SensorMetrics,
    SystemMetrics,
    registry_of,
)
from pistatsd.metrics_machine import label, machine_families
from pistatsd.web.connections import ConnectionCounter
from pistatsd.web.traffic import Traffic
from tests.machine_snapshots import ALL, ODD_MOUNT, PC, PI, first_sample, with_odd_mount
from tests.real import require_program


class FakeSampler:
    def __init__(self, snapshot: dict[str, Any] | None) -> None:
        self.snapshot = snapshot

    @property
    def latest(self) -> dict[str, Any]:
        if self.snapshot is None:
            raise RuntimeError("no snapshot yet")
        return self.snapshot


def scrape(snapshot: dict[str, Any] | None) -> bytes:
    """The exposition of a daemon registry whose sampler holds C{snapshot}."""
    requests = RequestCounter()
    requests.count("GET", "/stats", 200)
    registry = registry_of(
        requests,
        (
            ConnectionMetrics(ConnectionCounter(1024), Traffic()),
            SystemMetrics(FakeSampler(snapshot)),
            InfluxMetrics(lambda: {"enabled": True, "queued": 0, "spooled": 0, "dropped": 0}),
            SensorMetrics(lambda: {"room": 21.5}),
        ),
    )
    return generate_latest(registry)


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the text, by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode("utf-8"))
        for s in family.samples
    }


def value(found: dict, metric: str, /, **labels: str) -> float | None:
    return found.get((metric, tuple(sorted(labels.items()))))


def names(found: dict) -> set[str]:
    return {name for name, _ in found}


def promtool_problems(promtool: str, body: bytes) -> str:
    """Everything C{promtool check metrics} says about C{body}, and its exit status."""
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60
    )
    said = (result.stdout + result.stderr).decode("utf-8", "replace").strip()
    return said if result.returncode == 0 and not said else f"exit {result.returncode}: {said}"


class MachineFamiliesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.found = samples(scrape(PI))

    def test_network_counters_by_interface(self) -> None:
        found = self.found
        self.assertEqual(
            value(found, "pistatsd_network_receive_bytes_total", interface="eth0"), 123000000
        )
        self.assertEqual(
            value(found, "pistatsd_network_transmit_bytes_total", interface="wlan0"), 340032
        )
        self.assertEqual(value(found, "pistatsd_network_receive_drop_total", interface="eth0"), 3)
        self.assertEqual(
            value(found, "pistatsd_network_transmit_errors_total", interface="wlan0"), 0
        )
        self.assertEqual(value(found, "pistatsd_network_physical_receive_bytes_total"), 123456789)
        self.assertEqual(value(found, "pistatsd_network_physical_transmit_bytes_total"), 7340032)
        self.assertEqual(value(found, "pistatsd_network_up", interface="eth0"), 1)
        self.assertEqual(value(found, "pistatsd_network_speed_bytes", interface="eth0"), 125e6)
        self.assertIsNone(value(found, "pistatsd_network_speed_bytes", interface="wlan0"))
        self.assertEqual(value(found, "pistatsd_wifi_signal_dbm", interface="wlan0"), -55)
        self.assertEqual(value(found, "pistatsd_wifi_link_quality_ratio", interface="wlan0"), 0.71)
        # Rates are left to PromQL's rate(): no per-second network families.
        self.assertFalse(
            [n for n in names(found) if n.startswith("pistatsd_network") and "per" in n]
        )

    def test_odd_interface_names_round_trip(self) -> None:
        odd = 'br-"lan\\1'
        self.assertEqual(value(self.found, "pistatsd_network_up", interface=odd), 0)
        self.assertEqual(value(self.found, "pistatsd_network_virtual", interface=odd), 1)
        self.assertIn(b'interface="br-\\"lan\\\\1"', scrape(PI))

    def test_filesystems(self) -> None:
        root = {"mount": "/", "device": "/dev/mmcblk0p2", "fstype": "ext4"}
        photos = {"mount": "/media/My Photos", "device": "/dev/sda1", "fstype": "exfat"}
        boot = {"mount": "/boot/firmware", "device": "/dev/mmcblk0p1", "fstype": "vfat"}
        nas = {"mount": "/mnt/nas", "device": "nas:/export", "fstype": "nfs4"}
        found = self.found
        self.assertEqual(value(found, "pistatsd_filesystem_size_bytes", **root), 29 * 1024**3)
        self.assertEqual(value(found, "pistatsd_filesystem_avail_bytes", **root), 2 * 1024**3)
        self.assertEqual(value(found, "pistatsd_filesystem_used_percent", **root), 93.1)
        self.assertEqual(value(found, "pistatsd_filesystem_read_only", **root), 0)
        self.assertEqual(value(found, "pistatsd_filesystem_read_only", **boot), 1)
        self.assertIsNone(value(found, "pistatsd_filesystem_inodes_used_percent", **boot))
        self.assertEqual(value(found, "pistatsd_filesystem_used_bytes", **photos), 400 * 1024**3)
        # The hung NFS mount: an error, and no made-up sizes.
        self.assertEqual(value(found, "pistatsd_filesystem_device_error", **nas), 1)
        self.assertEqual(value(found, "pistatsd_filesystem_device_error", **root), 0)
        self.assertIsNone(value(found, "pistatsd_filesystem_size_bytes", **nas))

    def test_a_mount_point_that_is_not_utf8_does_not_break_the_scrape(self) -> None:
        body = scrape(with_odd_mount())
        found = samples(body)
        odd = {"mount": "/mnt/caf\\udce9", "device": "/dev/sdb1", "fstype": "ext4"}
        self.assertEqual(value(found, "pistatsd_filesystem_size_bytes", **odd), 1024**3)
        self.assertEqual(label(ODD_MOUNT), "/mnt/caf\\udce9")

    def test_disk_io(self) -> None:
        found = self.found
        self.assertEqual(
            value(found, "pistatsd_disk_written_bytes_total", device="mmcblk0"), 52613349376
        )
        self.assertEqual(
            value(found, "pistatsd_disk_write_bytes_per_second", device="mmcblk0"), 2621440
        )
        self.assertEqual(value(found, "pistatsd_disk_read_bytes_per_second", device="sda"), 0)
        self.assertEqual(value(found, "pistatsd_disk_busy_percent", device="mmcblk0"), 7.5)
        self.assertEqual(
            value(found, "pistatsd_disk_life_time_used_percent", device="mmcblk0", type="b"), 20
        )
        self.assertEqual(value(found, "pistatsd_disk_pre_eol", device="mmcblk0", state="normal"), 1)
        self.assertEqual(value(found, "pistatsd_disk_pre_eol", device="mmcblk0", state="urgent"), 0)
        self.assertIsNone(value(found, "pistatsd_disk_pre_eol", device="sda", state="normal"))

    def test_processes(self) -> None:
        found = self.found
        self.assertEqual(value(found, "pistatsd_processes", state="running"), 2)
        self.assertEqual(value(found, "pistatsd_processes", state="zombie"), 1)
        self.assertEqual(value(found, "pistatsd_processes", state="other"), 179)
        self.assertEqual(
            value(found, "pistatsd_top_process_cpu_percent", rank="1", pid="812", name="python3"),
            35.2,
        )
        self.assertEqual(
            value(
                found,
                "pistatsd_top_process_resident_memory_bytes",
                rank="2",
                pid="700",
                name="influxd",
            ),
            60 * 1024**2,
        )

    def test_cpu_fans_power_and_temperatures(self) -> None:
        found = self.found
        self.assertEqual(value(found, "pistatsd_cpu_frequency_hertz"), 1.8e9)
        self.assertEqual(value(found, "pistatsd_fan_rpm", chip="pwmfan", sensor="fan1"), 3121)
        self.assertEqual(value(found, "pistatsd_throttled", flag="under_voltage", when="now"), 1)
        self.assertEqual(
            value(found, "pistatsd_throttled", flag="freq_capped", when="since_boot"), 1
        )
        self.assertEqual(
            value(found, "pistatsd_throttled_changed_timestamp_seconds", flag="under_voltage"),
            1732239000.0,
        )
        self.assertIsNone(
            value(found, "pistatsd_throttled_changed_timestamp_seconds", flag="soft_temp_limit")
        )
        self.assertEqual(value(found, "pistatsd_core_volts"), 0.8625)
        self.assertEqual(value(found, "pistatsd_input_volts"), 4.87)
        self.assertEqual(
            value(found, "pistatsd_temperature_sensor_celsius", sensor="rp1_adc"), 41.0
        )

    def test_first_sample_leaves_rates_out(self) -> None:
        found = samples(scrape(first_sample()))
        self.assertIsNone(value(found, "pistatsd_disk_write_bytes_per_second", device="mmcblk0"))
        self.assertIsNone(value(found, "pistatsd_cpu_percent"))
        # Counters need no window: they are there from the first sample.
        self.assertEqual(
            value(found, "pistatsd_disk_written_bytes_total", device="mmcblk0"), 52613349376
        )
        self.assertEqual(
            value(
                found,
                "pistatsd_top_process_resident_memory_bytes",
                rank="1",
                pid="812",
                name="python3",
            ),
            88 * 1024**2,
        )
        self.assertFalse([n for n in names(found) if n.startswith("pistatsd_top_process_cpu")])

    def test_no_pi_no_power_families(self) -> None:
        found = names(samples(scrape(PC)))
        for absent in ("pistatsd_throttled", "pistatsd_core_volts", "pistatsd_fan_rpm"):
            self.assertNotIn(absent, found)
        self.assertNotIn("pistatsd_cpu_frequency_hertz", found)
        self.assertIn("pistatsd_processes", found)

    def test_every_fixture_scrapes(self) -> None:
        """Absent, null, empty: each snapshot gives a parsable exposition with the daemon's own."""
        for name, snapshot in [*ALL.items(), ("none yet", None)]:
            found = names(samples(scrape(snapshot)))
            self.assertIn("pistatsd_http_requests_total", found, name)
            self.assertIn("pistatsd_sensor_value", found, name)

    def test_repeated_label_sets_are_dropped(self) -> None:
        """Two entries the collectors failed to tell apart are one series, not a broken scrape."""
        twice = {"filesystems": [PI["filesystems"][0], PI["filesystems"][0]]}
        [*families] = machine_families(twice)
        [size] = [f for f in families if f.name == "pistatsd_filesystem_size_bytes"]
        self.assertEqual(len(size.samples), 1)


@pytest.mark.real
@pytest.mark.parametrize("name", [*ALL, "odd mount"])
def test_promtool_finds_no_problem(name: str) -> None:
    """The real promtool lints each fixture's exposition: exit 0 and not a word said."""
    promtool = require_program("promtool")
    snapshot = with_odd_mount() if name == "odd mount" else ALL[name]
    assert promtool_problems(promtool, scrape(snapshot)) == ""


@pytest.mark.real
def test_promtool_would_say_something() -> None:
    """The check can fail: promtool does complain about a counter without C{_total}."""
    promtool = require_program("promtool")
    bad = b"# HELP x_bytes A counter.\n# TYPE x_bytes counter\nx_bytes 1\n"
    assert promtool_problems(promtool, bad) != ""


@pytest.mark.real
def test_promtool_on_the_real_daemon(tmp_path) -> None:
    """A real daemon's C{/metrics}, machine parts and all, is clean under the real promtool.

    The families checked are those of the parts the daemon's C{/stats} has,
    so the test holds whichever collectors this daemon runs.
    """
    import json

    from tests.daemon import Daemon

    promtool = require_program("promtool")
    daemon = Daemon(["--state-dir", str(tmp_path / "state"), "--sample-interval", "0.2"]).start()
    try:
        status, _, body = daemon.get("/metrics")
        assert status == 200
        assert promtool_problems(promtool, body) == ""
        found = names(samples(body))
        assert {"pistatsd_memory_percent", "process_resident_memory_bytes"} <= found
        _, _, raw = daemon.get("/stats")
        snapshot = json.loads(raw)
        expected = {
            "filesystems": "pistatsd_filesystem_size_bytes",
            "disk_io": "pistatsd_disk_written_bytes_total",
            "processes": "pistatsd_processes",
            "net": "pistatsd_network_physical_receive_bytes_total",
        }
        for part, family in expected.items():
            if snapshot.get(part):
                assert family in found, (part, sorted(found))
    finally:
        assert daemon.stop() == 0
    assert "Traceback" not in daemon.text()
