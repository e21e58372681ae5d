"""Tests for L{pistatsd.sysinfo}: exact numbers from a fake psutil and a fake sysfs."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections import Counter, namedtuple
from typing import Any

from twisted.logger import LogEvent, LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.sysinfo import (
    THROTTLED_PATH,
    CpuReading,
    SystemCollector,
    cpu_percent_between,
    cpu_section,
    parse_throttled,
    pick_celsius,
)

scputimes = namedtuple(
    "scputimes", "user nice system idle iowait irq softirq steal guest guest_nice"
)
svmem = namedtuple("svmem", "total available percent used free")
sswap = namedtuple("sswap", "total used free percent sin sout")
sdiskusage = namedtuple("sdiskusage", "total used free percent")
shwtemp = namedtuple("shwtemp", "label current high critical")


def cpu(user: float = 0.0, system: float = 0.0, idle: float = 0.0, iowait: float = 0.0) -> Any:
    """A Linux-shaped cpu_times tuple with the fields that matter here."""
    return scputimes(user, 0.0, system, idle, iowait, 0.0, 0.0, 0.0, 0.0, 0.0)


def temp(current: float | None) -> Any:
    """One psutil temperature reading."""
    return shwtemp("", current, None, None)


class FakePsutil:
    """The psutil functions pistatsd calls, returning whatever the test sets.

    Put an exception in C{errors[function_name]} to make that function raise;
    C{calls} counts calls so tests can check what is read how often.
    """

    def __init__(self) -> None:
        self.total = cpu(user=100, system=50, idle=800, iowait=50)
        self.per_cpu = [cpu(user=50, idle=450), cpu(user=50, system=50, idle=350, iowait=50)]
        self.load = (0.104, 0.2, 0.3)
        self.temperatures: dict[str, list[Any]] = {}
        self.errors: dict[str, BaseException] = {}
        self.calls: Counter[str] = Counter()
        self.disk_paths: list[str] = []

    def _call(self, name: str) -> None:
        self.calls[name] += 1
        if name in self.errors:
            raise self.errors[name]

    def cpu_times(self, percpu: bool = False) -> Any:
        self._call("cpu_times")
        return list(self.per_cpu) if percpu else self.total

    def getloadavg(self) -> tuple[float, float, float]:
        self._call("getloadavg")
        return self.load

    def virtual_memory(self) -> Any:
        self._call("virtual_memory")
        return svmem(total=1000, available=600, percent=40.0, used=400, free=100)

    def swap_memory(self) -> Any:
        self._call("swap_memory")
        return sswap(total=200, used=50, free=150, percent=25.0, sin=0, sout=0)

    def boot_time(self) -> float:
        self._call("boot_time")
        return 1000.0

    def disk_usage(self, path: str) -> Any:
        self._call("disk_usage")
        self.disk_paths.append(path)
        return sdiskusage(total=4000, used=1000, free=3000, percent=25.0)

    def sensors_temperatures(self) -> dict[str, list[Any]]:
        self._call("sensors_temperatures")
        return self.temperatures


class NoSensorsPsutil(FakePsutil):
    """psutil on a platform without C{sensors_temperatures} (macOS, Windows)."""

    @property
    def sensors_temperatures(self) -> Any:  # type: ignore[override]
        raise AttributeError("sensors_temperatures")


def capture_logs(case: SynchronousTestCase, namespace: str) -> list[LogEvent]:
    """Every event logged in C{namespace} for the rest of the test."""
    events: list[LogEvent] = []

    def observer(event: LogEvent) -> None:
        if event.get("log_namespace") == namespace:
            events.append(event)

    globalLogPublisher.addObserver(observer)
    case.addCleanup(globalLogPublisher.removeObserver, observer)
    return events


def write(root: str, relative: str, text: str) -> None:
    """Create C{root/relative} with C{text}, making directories as needed."""
    path = os.path.join(root, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def empty_sysfs(case: SynchronousTestCase) -> str:
    """A fresh, empty fake sysfs root, removed after the test.

    Under pytest, C{mktemp} paths are relative to the checkout (trial would
    use C{_trial_temp}), so the tree and its empty parents are cleaned up.
    """
    root = case.mktemp()
    os.makedirs(root)
    case.addCleanup(remove_tree, os.path.dirname(root))
    return root


def remove_tree(path: str) -> None:
    """Remove C{path} and then its parents while they are empty."""
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.removedirs(os.path.dirname(path))


def collector(case: SynchronousTestCase, fake: FakePsutil | None = None, **kw: Any) -> Any:
    """A L{SystemCollector} on a fake psutil and empty fake sysfs and procfs by default."""
    kw.setdefault("sys_root", empty_sysfs(case))
    kw.setdefault("proc_root", empty_sysfs(case))
    return SystemCollector(psutil=fake or FakePsutil(), hostname="pi", **kw)


class CpuPercentBetweenTests(SynchronousTestCase):
    """psutil's arithmetic, reproduced exactly."""

    T = namedtuple("T", "user system idle iowait")

    def test_busyOverTotal(self) -> None:
        """busy = total - idle - iowait, over the deltas."""
        before = self.T(user=100, system=50, idle=800, iowait=50)
        after = self.T(user=130, system=60, idle=850, iowait=60)
        self.assertEqual(cpu_percent_between(before, after), 40.0)

    def test_roundedToOneDecimal(self) -> None:
        """One busy tick in three is 33.3, not 33.333..."""
        before = self.T(0, 0, 0, 0)
        after = self.T(user=1, system=0, idle=2, iowait=0)
        self.assertEqual(cpu_percent_between(before, after), 33.3)

    def test_allBusyAllIdle(self) -> None:
        """The bounds are 100.0 and 0.0."""
        zero = self.T(0, 0, 0, 0)
        self.assertEqual(cpu_percent_between(zero, self.T(5, 5, 0, 0)), 100.0)
        self.assertEqual(cpu_percent_between(zero, self.T(0, 0, 7, 3)), 0.0)

    def test_zeroDelta(self) -> None:
        """No ticks in the window is 0.0, not a ZeroDivisionError."""
        same = self.T(100, 50, 800, 50)
        self.assertEqual(cpu_percent_between(same, same), 0.0)

    def test_negativeDeltaCountsAsZero(self) -> None:
        """A counter going backwards is trimmed to zero, as psutil does.

        Without trimming, system's -10 would cancel user's +10 and give 0.0.
        """
        before = self.T(user=100, system=50, idle=100, iowait=0)
        after = self.T(user=110, system=40, idle=110, iowait=0)
        self.assertEqual(cpu_percent_between(before, after), 50.0)

    def test_guestNotCountedTwice(self) -> None:
        """Linux counts guest time inside user: it leaves the total (58.3 otherwise)."""
        G = namedtuple("G", "user idle guest guest_nice")
        before = G(0, 0, 0, 0)
        after = G(user=50, idle=50, guest=20, guest_nice=0)
        self.assertEqual(cpu_percent_between(before, after), 50.0)

    def test_onlyGuestTicks(self) -> None:
        """A window whose only ticks are guest ticks has a zero total: 0.0."""
        G = namedtuple("G", "user idle guest")
        self.assertEqual(cpu_percent_between(G(0, 0, 0), G(0, 0, 10)), 0.0)


class CpuSectionTests(SynchronousTestCase):
    """The C{cpu} part built from two readings."""

    def test_warmingUp(self) -> None:
        """No previous reading: null percentages and interval, never 0.0."""
        after = CpuReading(5.0, cpu(1, 1, 1), [cpu(1), cpu(2)], [0.1, 0.2, 0.3])
        self.assertEqual(
            cpu_section(None, after),
            {
                "percent": None,
                "per_cpu": [None, None],
                "count": 2,
                "load": [0.1, 0.2, 0.3],
                "interval": None,
                "freq_mhz": None,
            },
        )

    def test_window(self) -> None:
        """Percentages and the real window between the readings."""
        before = CpuReading(10.0, cpu(idle=0), [cpu(), cpu()], None)
        after = CpuReading(
            12.5, cpu(user=3, idle=1), [cpu(user=1, idle=1), cpu(user=2, iowait=2)], None
        )
        section = cpu_section(before, after)
        self.assertEqual(section["percent"], 75.0)
        self.assertEqual(section["per_cpu"], [50.0, 50.0])
        self.assertEqual(section["interval"], 2.5)
        self.assertIsNone(section["load"])

    def test_hotplug(self) -> None:
        """A CPU appearing between readings: per-CPU values are unknown, not wrong."""
        before = CpuReading(0.0, cpu(), [cpu()], None)
        after = CpuReading(1.0, cpu(user=1, idle=1), [cpu(user=1), cpu(idle=1)], None)
        section = cpu_section(before, after)
        self.assertEqual(section["per_cpu"], [None, None])
        self.assertEqual(section["count"], 2)
        self.assertEqual(section["percent"], 50.0)


class CollectorCpuTests(SynchronousTestCase):
    """The collector's CPU window advances one collect at a time."""

    def test_firstSampleWarmsUp(self) -> None:
        """The first snapshot's CPU percent is null, with the count and load known."""
        snapshot = collector(self).collect(1000.0)
        self.assertEqual(
            snapshot["cpu"],
            {
                "percent": None,
                "per_cpu": [None, None],
                "count": 2,
                "load": [0.1, 0.2, 0.3],
                "interval": None,
                "freq_mhz": None,
            },
        )

    def test_secondSampleMeasures(self) -> None:
        """The second snapshot covers the window since the first."""
        fake = FakePsutil()
        c = collector(self, fake)
        c.collect(1000.0)
        fake.total = cpu(user=130, system=60, idle=850, iowait=60)
        fake.per_cpu = [cpu(user=60, idle=460), cpu(user=90, system=50, idle=360, iowait=50)]
        section = c.collect(1001.0)["cpu"]
        self.assertEqual(section["percent"], 40.0)
        self.assertEqual(section["per_cpu"], [50.0, 80.0])
        self.assertEqual(section["interval"], 1.0)

    def test_readCpuDoesNotMoveTheWindow(self) -> None:
        """Extra readings (on-demand measurements) leave the sampler's window alone."""
        fake = FakePsutil()
        c = collector(self, fake)
        c.collect(1000.0)
        fake.total = cpu(user=110, system=50, idle=800, iowait=50)
        reading = c.read_cpu(1000.5)
        self.assertEqual(reading.when, 1000.5)
        self.assertEqual(reading.total, fake.total)
        self.assertEqual(len(reading.per_cpu), 2)
        fake.total = cpu(user=120, system=50, idle=810, iowait=60)
        self.assertEqual(c.collect(1002.0)["cpu"]["interval"], 2.0)
        self.assertEqual(c.collect(1002.0)["cpu"]["percent"], 0.0)

    def test_noLoadAverage(self) -> None:
        """Where the OS has no load average, C{load} is null and the rest is there."""
        fake = FakePsutil()
        fake.errors["getloadavg"] = OSError("no loadavg")
        section = collector(self, fake).collect(1.0)["cpu"]
        self.assertIsNone(section["load"])
        self.assertEqual(section["count"], 2)


class TemperatureTests(SynchronousTestCase):
    """One stable C{temperature} shape, whatever the source."""

    def zones(self, *zones: tuple[str, str | None, str]) -> str:
        """A fake sysfs with C{(zone directory, type or None, temp text)} zones."""
        root = empty_sysfs(self)
        for directory, kind, millidegrees in zones:
            base = f"class/thermal/{directory}"
            write(root, f"{base}/temp", millidegrees)
            if kind is not None:
                write(root, f"{base}/type", kind + "\n")
        return root

    def test_psutilPreferredSensor(self) -> None:
        """The CPU sensor is the headline; every sensor's first reading is listed."""
        fake = FakePsutil()
        fake.temperatures = {
            "acpitz": [temp(40.04), temp(99.0)],
            "cpu_thermal": [temp(48.26)],
            "nvme": [],
        }
        self.assertEqual(
            collector(self, fake).temperature(),
            {"celsius": 48.3, "sensors": {"acpitz": 40.0, "cpu_thermal": 48.3}},
        )

    def test_preferenceOrder(self) -> None:
        """cpu_thermal, coretemp, k10temp, soc_thermal, else the first one."""
        self.assertEqual(pick_celsius({"k10temp": 1.0, "coretemp": 2.0}), 2.0)
        self.assertEqual(pick_celsius({"soc_thermal": 1.0, "k10temp": 3.0}), 3.0)
        self.assertEqual(pick_celsius({"wifi": 4.0, "nvme": 5.0}), 4.0)
        self.assertEqual(pick_celsius({"acpitz": 1.0, "cpu-thermal": 6.0}), 6.0)
        self.assertIsNone(pick_celsius({}))

    def test_sysfsFallback(self) -> None:
        """No psutil sensors: thermal zones in millidegrees, named by their type."""
        root = self.zones(
            ("thermal_zone0", "acpitz", "40000\n"),
            ("thermal_zone1", "cpu-thermal", "48312\n"),
            ("thermal_zone2", "broken", "garbage\n"),
            ("thermal_zone3", None, "30000\n"),
        )
        self.assertEqual(
            collector(self, sys_root=root).temperature(),
            {
                "celsius": 48.3,
                "sensors": {"acpitz": 40.0, "cpu-thermal": 48.3, "thermal_zone3": 30.0},
            },
        )

    def test_sysfsZonesInNumericOrder(self) -> None:
        """zone2 comes before zone10: with duplicate types, the lower zone wins."""
        root = self.zones(
            ("thermal_zone10", "acpitz", "10000"),
            ("thermal_zone2", "acpitz", "20000"),
        )
        self.assertEqual(collector(self, sys_root=root).temperature()["sensors"], {"acpitz": 20.0})

    def test_psutilWinsOverSysfs(self) -> None:
        """sysfs is only a fallback."""
        fake = FakePsutil()
        fake.temperatures = {"coretemp": [temp(55.0)]}
        root = self.zones(("thermal_zone0", "x86_pkg_temp", "70000"))
        self.assertEqual(
            collector(self, fake, sys_root=root).temperature(),
            {"celsius": 55.0, "sensors": {"coretemp": 55.0}},
        )

    def test_noSensorsFunction(self) -> None:
        """A psutil without sensors_temperatures (AttributeError): sysfs is used."""
        root = self.zones(("thermal_zone0", "cpu-thermal", "51000"))
        c = collector(self, NoSensorsPsutil(), sys_root=root)
        self.assertEqual(c.temperature(), {"celsius": 51.0, "sensors": {"cpu-thermal": 51.0}})

    def test_psutilRaises(self) -> None:
        """sensors_temperatures raising AttributeError or OSError: sysfs is used."""
        root = self.zones(("thermal_zone0", "cpu-thermal", "51000"))
        for error in (AttributeError("no"), OSError("no")):
            fake = FakePsutil()
            fake.errors["sensors_temperatures"] = error
            self.assertEqual(
                collector(self, fake, sys_root=root).collect(1.0)["temperature"]["celsius"], 51.0
            )

    def test_nothing(self) -> None:
        """No sensor anywhere: celsius is null, which is not an error."""
        events = capture_logs(self, "pistatsd.sysinfo")
        c = collector(self, NoSensorsPsutil())
        self.assertEqual(c.collect(1.0)["temperature"], {"celsius": None, "sensors": {}})
        self.assertEqual([e for e in events if e["log_level"] >= LogLevel.warn], [])


class ThrottledParseTests(SynchronousTestCase):
    """The firmware's throttle word: bits 0..3 now, 16..19 since boot."""

    NONE = {
        "under_voltage": False,
        "freq_capped": False,
        "throttled": False,
        "soft_temp_limit": False,
    }
    ALL = dict.fromkeys(NONE, True)

    def test_zero(self) -> None:
        """All clear."""
        self.assertEqual(
            parse_throttled("0x0"), {"raw": "0x0", "now": self.NONE, "since_boot": self.NONE}
        )

    def test_underVoltageAndThrottled(self) -> None:
        """0x50005: under-voltage and throttled, now and since boot."""
        flags = {**self.NONE, "under_voltage": True, "throttled": True}
        self.assertEqual(
            parse_throttled("0x50005"), {"raw": "0x50005", "now": flags, "since_boot": flags}
        )

    def test_allBits(self) -> None:
        """0xf000f: every flag, both halves; unrelated bits are ignored."""
        self.assertEqual(
            parse_throttled("0xf000f"), {"raw": "0xf000f", "now": self.ALL, "since_boot": self.ALL}
        )
        self.assertEqual(parse_throttled("0xfff0fff0")["now"], self.NONE)

    def test_bareDigitsAreHex(self) -> None:
        """The kernel writes C{"%x\\n"}: C{80000} is bit 19, soft temp limit since boot."""
        self.assertEqual(
            parse_throttled("80000\n"),
            {
                "raw": "0x80000",
                "now": self.NONE,
                "since_boot": {**self.NONE, "soft_temp_limit": True},
            },
        )
        self.assertEqual(parse_throttled("50005\n"), parse_throttled("0x50005"))

    def test_vcgencmdFormat(self) -> None:
        """C{vcgencmd get_throttled}'s C{throttled=0x...} is understood too."""
        self.assertEqual(parse_throttled("throttled=0x50005\n")["raw"], "0x50005")

    def test_garbage(self) -> None:
        """Anything but a hex number is a ValueError."""
        for text in ("", "\n", "0x", "hello", "-1", "+5", "0xzz", "5 5", "1.5"):
            self.assertRaises(ValueError, parse_throttled, text)


class ThrottledCollectTests(SynchronousTestCase):
    """The C{throttled} key: there on a Raspberry Pi, absent elsewhere."""

    def test_absent(self) -> None:
        """No firmware file: no C{throttled} key at all."""
        self.assertNotIn("throttled", collector(self).collect(1.0))

    def test_present(self) -> None:
        """The firmware file's flags are in the snapshot."""
        root = empty_sysfs(self)
        write(root, THROTTLED_PATH, "50005\n")
        throttled = collector(self, sys_root=root).collect(1.0)["throttled"]
        self.assertEqual(throttled["raw"], "0x50005")
        self.assertTrue(throttled["since_boot"]["under_voltage"])

    def test_garbageLoggedOnce(self) -> None:
        """Garbage: no key, one warning however many samples."""
        events = capture_logs(self, "pistatsd.sysinfo")
        root = empty_sysfs(self)
        write(root, THROTTLED_PATH, "what\n")
        c = collector(self, sys_root=root)
        for when in (1.0, 2.0, 3.0):
            self.assertNotIn("throttled", c.collect(when))
        self.assertEqual([e["log_level"] for e in events], [LogLevel.warn])

    def test_unreadable(self) -> None:
        """A file that cannot be read (here: a directory): no key, one warning."""
        events = capture_logs(self, "pistatsd.sysinfo")
        root = empty_sysfs(self)
        os.makedirs(os.path.join(root, THROTTLED_PATH))
        c = collector(self, sys_root=root)
        self.assertNotIn("throttled", c.collect(1.0))
        self.assertNotIn("throttled", c.collect(2.0))
        self.assertEqual([e["log_level"] for e in events], [LogLevel.warn])


class SnapshotTests(SynchronousTestCase):
    """The whole snapshot, and its resilience part by part."""

    def test_shape(self) -> None:
        """Every part, from the fake psutil's exact numbers."""
        sys_root, proc_root = empty_sysfs(self), empty_sysfs(self)
        write(
            proc_root,
            "net/dev",
            "Inter-| header\n face | header\n"
            "    lo: 7 1 0 0 0 0 0 0 7 1 0 0 0 0 0 0\n"
            "  eth0: 20 2 0 0 0 0 0 0 10 1 0 0 0 0 0 0\n",
        )
        os.makedirs(os.path.join(sys_root, "class/net/eth0/device"))
        c = collector(self, disk_path="/data", sys_root=sys_root, proc_root=proc_root)
        snapshot = c.collect(1500.0)
        del snapshot["cpu"]
        del snapshot["net"]["interfaces"]  # in tests/test_machine_net.py
        self.assertEqual(
            snapshot,
            {
                "timestamp": 1500.0,
                "hostname": "pi",
                "temperature": {"celsius": None, "sensors": {}},
                "memory": {"total": 1000, "available": 600, "used": 400, "percent": 40.0},
                "swap": {"total": 200, "used": 50, "percent": 25.0},
                "uptime": {"seconds": 500.0, "boot_time": 1000.0},
                "disk": {
                    "path": "/data",
                    "total": 4000,
                    "used": 1000,
                    "free": 3000,
                    "percent": 25.0,
                },
                "net": {
                    "bytes_sent": 10,
                    "bytes_recv": 20,
                    "packets_sent": 1,
                    "packets_recv": 2,
                    "rx_bytes_per_s": None,
                    "tx_bytes_per_s": None,
                },
            },
        )

    def test_bootTimeReadOnce(self) -> None:
        """The boot time never changes, so psutil is asked once; uptime still moves."""
        fake = FakePsutil()
        c = collector(self, fake)
        c.collect(1100.0)
        self.assertEqual(c.collect(1200.25)["uptime"]["seconds"], 200.2)
        self.assertEqual(fake.calls["boot_time"], 1)

    def test_defaultHostname(self) -> None:
        """Without a hostname, the machine's own is reported."""
        import socket

        c = SystemCollector(psutil=FakePsutil(), sys_root=empty_sysfs(self))
        self.assertEqual(c.collect(1.0)["hostname"], socket.gethostname())

    def test_noNetworkCounters(self) -> None:
        """No C{/proc/net/dev} (not Linux, no procfs): C{net} is null."""
        self.assertIsNone(collector(self).collect(1.0)["net"])

    def test_failingPartIsNullAndLoggedOnce(self) -> None:
        """A failing disk costs the disk part only, logged once per episode."""
        fake = FakePsutil()
        fake.errors["disk_usage"] = PermissionError("no")
        c = collector(self, fake)
        first = c.collect(1.0)
        second = c.collect(2.0)
        self.assertIsNone(first["disk"])
        self.assertIsNone(second["disk"])
        self.assertEqual(second["memory"]["percent"], 40.0)
        self.assertIsNotNone(second["cpu"]["percent"])
        self.assertEqual(len(self.flushLoggedErrors(PermissionError)), 1)

        del fake.errors["disk_usage"]
        self.assertEqual(c.collect(3.0)["disk"]["total"], 4000)
        fake.errors["disk_usage"] = PermissionError("again")
        self.assertIsNone(c.collect(4.0)["disk"])
        self.assertEqual(len(self.flushLoggedErrors(PermissionError)), 1)

    def test_manyFailingParts(self) -> None:
        """Every psutil part failing still gives a snapshot with the rest."""
        fake = FakePsutil()
        for name in ("cpu_times", "virtual_memory", "swap_memory", "boot_time"):
            fake.errors[name] = RuntimeError(name)
        snapshot = collector(self, fake).collect(1.0)
        for part in ("cpu", "memory", "swap", "uptime"):
            self.assertIsNone(snapshot[part], part)
        self.assertEqual(snapshot["disk"]["total"], 4000)
        self.assertEqual(snapshot["hostname"], "pi")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 4)


class RealMachineTests(SynchronousTestCase):
    """Smoke test: the real psutil and /sys on this machine give the right shape."""

    def test_shape(self) -> None:
        """Keys and types, not values (they vary)."""
        c = SystemCollector()
        c.collect(1000.0)
        snapshot = c.collect(1001.0)
        self.assertEqual(self.flushLoggedErrors(), [])
        expected = {
            "timestamp",
            "hostname",
            "cpu",
            "temperature",
            "memory",
            "swap",
            "uptime",
            "disk",
            "net",
        }
        self.assertEqual(set(snapshot) - {"throttled"}, expected)
        cpu_part = snapshot["cpu"]
        self.assertIsInstance(cpu_part["percent"], float)
        self.assertTrue(0.0 <= cpu_part["percent"] <= 100.0)
        self.assertEqual(len(cpu_part["per_cpu"]), cpu_part["count"])
        self.assertTrue(all(isinstance(p, float) for p in cpu_part["per_cpu"]))
        self.assertEqual(cpu_part["interval"], 1.0)
        self.assertEqual(len(cpu_part["load"]), 3)
        celsius = snapshot["temperature"]["celsius"]
        self.assertTrue(celsius is None or isinstance(celsius, float))
        self.assertIsInstance(snapshot["temperature"]["sensors"], dict)
        for key in ("total", "available", "used"):
            self.assertIsInstance(snapshot["memory"][key], int)
        self.assertIsInstance(snapshot["memory"]["percent"], float)
        self.assertEqual(set(snapshot["swap"]), {"total", "used", "percent"})
        self.assertIsInstance(snapshot["uptime"]["boot_time"], float)
        self.assertEqual(snapshot["disk"]["path"], "/")
        self.assertGreater(snapshot["disk"]["total"], 0)
        self.assertEqual(
            set(snapshot["net"]),
            {
                "bytes_sent",
                "bytes_recv",
                "packets_sent",
                "packets_recv",
                "rx_bytes_per_s",
                "tx_bytes_per_s",
                "interfaces",
            },
        )
        freq = cpu_part["freq_mhz"]
        self.assertTrue(freq is None or freq > 0)
        self.assertIsInstance(snapshot["hostname"], str)
