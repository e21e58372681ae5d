"""The whole machine in the sampler: a real L{Sampler} on a L{Clock} over fixture trees."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.config import build_config
from pistatsd.machine.diskio import DiskIOCollector
from pistatsd.machine.fans import FanCollector
from pistatsd.machine.wiring import machine_parts
from pistatsd.sampler import Sampler
from pistatsd.sysinfo import SystemCollector
from pistatsd.tap import makeService
from tests.machine_trees import diskstats_line, net_dev, raspberry_pi, write
from tests.unit.test_sysinfo import FakePsutil

NEW_KEYS = {"disk_io", "fans"}


class MachineSamplerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000.0)
        self.sys_root, self.proc_root = raspberry_pi(self)
        write(self.sys_root, "class/hwmon/hwmon2/name", "pwmfan\n")
        write(self.sys_root, "class/hwmon/hwmon2/fan1_input", "2900\n")
        collector = SystemCollector(
            psutil=FakePsutil(), sys_root=self.sys_root, proc_root=self.proc_root, hostname="pi"
        )
        config = build_config({})
        parts = machine_parts(config, self.clock, sys_root=self.sys_root, proc_root=self.proc_root)
        self.sampler = Sampler(
            self.clock, interval=1.0, collector=collector, wall=lambda: 1.7e9, parts=parts
        )
        self.sampler.startService()
        self.addCleanup(self.sampler.stopService)

    def test_newKeys(self) -> None:
        """The first snapshot has every section 11 addition."""
        latest = self.sampler.latest
        self.assertTrue(set(latest) >= NEW_KEYS)
        self.assertEqual(latest["cpu"]["freq_mhz"], 1500.0)
        self.assertEqual(sorted(latest["net"]["interfaces"]), ["eth0", "wlan0"])
        self.assertEqual(latest["net"]["interfaces"]["wlan0"]["wifi"]["signal_dbm"], -58)
        self.assertEqual(list(latest["disk_io"]), ["mmcblk0"])
        self.assertEqual(latest["fans"], {"pwmfan/fan1": 2900})
        self.assertEqual(latest["throttled"]["changed"]["under_voltage"], None)
        self.assertIn("core_volts", latest["throttled"])
        self.assertEqual(json.loads(self.sampler.latest_json)["fans"], {"pwmfan/fan1": 2900})

    def test_firstRatesNull(self) -> None:
        """Rates are null in the first sample, numbers in the next."""
        first = self.sampler.latest
        self.assertIsNone(first["net"]["rx_bytes_per_s"])
        self.assertIsNone(first["net"]["interfaces"]["eth0"]["tx_bytes_per_s"])
        disk = first["disk_io"]["mmcblk0"]
        for key in ("read_bytes_per_s", "write_bytes_per_s", "reads_per_s", "busy_percent"):
            self.assertIsNone(disk[key], key)

        write(
            self.proc_root,
            "net/dev",
            net_dev({"eth0": ((3000, 30), (2000, 20)), "wlan0": ((300, 3), (400, 4))}),
        )
        write(
            self.proc_root,
            "diskstats",
            diskstats_line("mmcblk0", 110, 2100, 60, 1000, io_ticks=200),
        )
        self.clock.advance(1.0)
        second = self.sampler.latest
        self.assertEqual(second["net"]["rx_bytes_per_s"], 2000.0)
        self.assertEqual(second["net"]["tx_bytes_per_s"], 0.0)
        self.assertEqual(
            second["disk_io"]["mmcblk0"],
            {
                "read_bytes_per_s": 100 * 512,
                "write_bytes_per_s": 200 * 512,
                "reads_per_s": 10.0,
                "writes_per_s": 10.0,
                "busy_percent": 20.0,
                "written_bytes": 1000 * 512,
            },
        )

    def test_changeDatedWithTheSnapshot(self) -> None:
        """A throttle flag's change time is the timestamp of the snapshot that saw it."""
        write(self.sys_root, "devices/platform/soc/soc:firmware/get_throttled", "4\n")
        self.clock.advance(1.0)
        latest = self.sampler.latest
        self.assertEqual(latest["throttled"]["changed"]["throttled"], latest["timestamp"])


class BrokenPart:
    """A part that breaks the promise never to raise, while C{broken}."""

    broken = True

    def section(self, when: float) -> Mapping[str, Any]:
        if self.broken:
            raise ZeroDivisionError("broken part")
        return {"broken": False}


class PartFailureTests(SynchronousTestCase):
    def test_brokenPartCostsItsKeysOnly(self) -> None:
        """The rest of the snapshot is published; one traceback per episode."""
        clock = Clock()
        sys_root, proc_root = raspberry_pi(self)
        part = BrokenPart()
        sampler = Sampler(
            clock,
            collector=SystemCollector(psutil=FakePsutil(), sys_root=sys_root, proc_root=proc_root),
            wall=clock.seconds,
            parts=[part, FanCollector(sys_root)],
        )
        sampler.startService()
        self.addCleanup(sampler.stopService)
        clock.pump([1.0] * 3)
        self.assertEqual(sampler.latest["timestamp"], 3.0)
        self.assertEqual(sampler.latest["fans"], {})
        self.assertNotIn("broken", sampler.latest)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        part.broken = False
        clock.advance(1.0)
        self.assertIs(sampler.latest["broken"], False)


class CompositionTests(SynchronousTestCase):
    def test_daemonSamplerHasTheParts(self) -> None:
        """The composition root gives the daemon's sampler the disk_io and fans parts."""
        config = build_config({"port": ["tcp:0:interface=127.0.0.1"]})
        service = makeService(config, MemoryReactorClock())
        sampler = service.getServiceNamed("sampler")
        kinds = {type(part) for part in sampler.parts}
        self.assertTrue({DiskIOCollector, FanCollector} <= kinds, kinds)
