"""Tests for L{pistatsd.machine.diskio}: per-disk I/O and eMMC wear from fixture trees."""

from __future__ import annotations

import os
import shutil

from twisted.logger import LogLevel
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.machine import diskio as diskio_module
from pistatsd.machine.diskio import (
    HEALTH_SECONDS,
    REDISCOVER_SECONDS,
    DiskCounters,
    DiskIOCollector,
    parse_diskstats,
    parse_life_time,
    parse_pre_eol,
)
from tests.machine_trees import block_device, diskstats_line, raspberry_pi, tree, write
from tests.unit.test_sysinfo import capture_logs

FIELDS = {
    "read_bytes_per_s",
    "write_bytes_per_s",
    "reads_per_s",
    "writes_per_s",
    "busy_percent",
    "written_bytes",
}


class ParseTests(SynchronousTestCase):
    """C{/proc/diskstats} and the eMMC registers, parsed."""

    def test_diskstats(self) -> None:
        """Reads, sectors read, writes, sectors written, io_ticks; from 14- to 20-field lines."""
        text = (
            " 254       0 vda 177867 17279 7338218 109668 177366 381902 14992440 124082 0 "
            "42812 258729 235593 104 7131568 19180 39329 5797\n"
            "   8       0 sda 10 0 80 5 20 0 160 9 0 30 14\n"
            "   8       1 sda1 1 2\n"
            "   8       2 sdb x y z 1 2 3 4 5 6 7 8\n"
        )
        self.assertEqual(
            parse_diskstats(text),
            {
                "vda": DiskCounters(177867, 7338218, 177366, 14992440, 42812),
                "sda": DiskCounters(10, 80, 20, 160, 30),
            },
        )

    def test_lifeTime(self) -> None:
        """JEDEC steps of 10 %, reported as the upper bound; 0x0B is past rated life."""
        self.assertEqual(parse_life_time("0x01 0x02\n"), [10, 20])
        self.assertEqual(parse_life_time("0x0a 0x0B"), [100, 110])
        self.assertEqual(parse_life_time("0x00 0x0c"), [None, None])
        self.assertEqual(parse_life_time("zz 0x03"), [None, 30])

    def test_preEol(self) -> None:
        """0x01 normal, 0x02 warning, 0x03 urgent, anything else unknown."""
        self.assertEqual(
            [parse_pre_eol(t) for t in ("0x01", "0x02\n", "0x03", "0x00", "", "x")],
            ["normal", "warning", "urgent", None, None, None],
        )


class DiskIOTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.sys_root, self.proc_root = raspberry_pi(self)
        self.c = DiskIOCollector(self.sys_root, self.proc_root)

    def stats(self, *lines: str) -> None:
        write(self.proc_root, "diskstats", "".join(lines))

    def disk_io(self, when: float) -> dict[str, dict[str, object]]:
        section = self.c.section(when)
        self.assertEqual(list(section), ["disk_io"])
        return section["disk_io"]


class WhichDisksTests(DiskIOTestCase):
    """Whole, real disks only."""

    def test_raspberryPi(self) -> None:
        """The SD card; not its partition, not zram swap, not a loop device."""
        self.assertEqual(list(self.disk_io(1.0)), ["mmcblk0"])

    def test_layersAndBootAreasLeftOut(self) -> None:
        """dm-*, md* (their disks show the I/O) and eMMC boot areas are not disks."""
        block_device(self.sys_root, "dm-0", physical=False)
        block_device(self.sys_root, "md0", physical=False)
        block_device(self.sys_root, "mmcblk0boot0")
        block_device(self.sys_root, "nvme0n1")
        self.stats(
            diskstats_line("mmcblk0"),
            diskstats_line("mmcblk0boot0", minor=8),
            diskstats_line("dm-0", major=253),
            diskstats_line("md0", major=9),
            diskstats_line("nvme0n1", major=259),
        )
        self.assertEqual(sorted(self.disk_io(1.0)), ["mmcblk0", "nvme0n1"])

    def test_diskPluggedIn(self) -> None:
        """A USB disk appears at the next listing of C{/sys/block}, not before."""
        self.disk_io(1.0)
        block_device(self.sys_root, "sda")
        self.stats(diskstats_line("mmcblk0"), diskstats_line("sda", major=8))
        self.assertEqual(list(self.disk_io(2.0)), ["mmcblk0"])
        self.assertEqual(sorted(self.disk_io(1.0 + REDISCOVER_SECONDS)), ["mmcblk0", "sda"])

    def test_diskUnplugged(self) -> None:
        """A disk gone from C{/proc/diskstats} is gone from C{disk_io} at once."""
        self.disk_io(1.0)
        self.stats(diskstats_line("zram0"))
        self.assertEqual(self.disk_io(2.0), {})


class RateTests(DiskIOTestCase):
    """Rates over the window; null first and after a counter went backwards."""

    def test_firstSample(self) -> None:
        """Rates null, written bytes known (sectors are 512 bytes), no health on an SD card."""
        self.assertEqual(
            self.disk_io(1.0)["mmcblk0"],
            {
                "read_bytes_per_s": None,
                "write_bytes_per_s": None,
                "reads_per_s": None,
                "writes_per_s": None,
                "busy_percent": None,
                "written_bytes": 800 * 512,
            },
        )

    def test_window(self) -> None:
        """Per second over the clock time between samples; busy is io_ticks over the window."""
        self.stats(diskstats_line("mmcblk0", 100, 2000, 50, 800, io_ticks=1000))
        self.disk_io(10.0)
        self.stats(diskstats_line("mmcblk0", 140, 2400, 70, 1000, io_ticks=1500))
        self.assertEqual(
            self.disk_io(12.0)["mmcblk0"],
            {
                "read_bytes_per_s": 200 * 512,
                "write_bytes_per_s": 100 * 512,
                "reads_per_s": 20.0,
                "writes_per_s": 10.0,
                "busy_percent": 25.0,
                "written_bytes": 1000 * 512,
            },
        )

    def test_busyCapped(self) -> None:
        """io_ticks can run a little ahead of the clock: never more than 100 %."""
        self.stats(diskstats_line("mmcblk0", io_ticks=0))
        self.disk_io(10.0)
        self.stats(diskstats_line("mmcblk0", io_ticks=1010))
        self.assertEqual(self.disk_io(11.0)["mmcblk0"]["busy_percent"], 100.0)

    def test_counterBackwards(self) -> None:
        """A reset or wrap: every rate of that disk null once, then from the new baseline."""
        self.stats(diskstats_line("mmcblk0", 100, 2000, 50, 800, io_ticks=1000))
        self.disk_io(10.0)
        self.stats(diskstats_line("mmcblk0", 5, 2100, 60, 900, io_ticks=1100))
        entry = self.disk_io(11.0)["mmcblk0"]
        self.assertEqual(
            {k: v for k, v in entry.items() if v is not None}, {"written_bytes": 900 * 512}
        )
        self.stats(diskstats_line("mmcblk0", 6, 2101, 60, 900, io_ticks=1100))
        entry = self.disk_io(12.0)["mmcblk0"]
        self.assertEqual((entry["reads_per_s"], entry["read_bytes_per_s"]), (1.0, 512.0))
        self.assertEqual(entry["busy_percent"], 0.0)


class HealthTests(DiskIOTestCase):
    """eMMC wear, where the chip reports it."""

    def emmc(self, life: str | None = "0x01 0x02\n", eol: str | None = "0x01\n") -> None:
        device = os.path.join(self.sys_root, "block/mmcblk0/device")
        if life is not None:
            write(device, "life_time", life)
        if eol is not None:
            write(device, "pre_eol_info", eol)

    def test_emmc(self) -> None:
        """Both registers: C{health} with types A and B and the pre-EOL state."""
        self.emmc()
        entry = self.disk_io(1.0)["mmcblk0"]
        self.assertEqual(set(entry), FIELDS | {"health"})
        self.assertEqual(entry["health"], {"life_time_percent": [10, 20], "pre_eol": "normal"})

    def test_onlyOneRegister(self) -> None:
        """One register readable: the other is null."""
        self.emmc(life=None, eol="0x03")
        health = self.disk_io(1.0)["mmcblk0"]["health"]
        self.assertEqual(health, {"life_time_percent": None, "pre_eol": "urgent"})

    def test_readHourly(self) -> None:
        """Wear moves over months: read again only after L{HEALTH_SECONDS}."""
        self.emmc()
        self.disk_io(1.0)
        self.emmc(life="0x02 0x03", eol="0x02")
        self.assertEqual(self.disk_io(2.0)["mmcblk0"]["health"]["life_time_percent"], [10, 20])
        health = self.disk_io(1.0 + HEALTH_SECONDS)["mmcblk0"]["health"]
        self.assertEqual(health, {"life_time_percent": [20, 30], "pre_eol": "warning"})


class FaultTests(DiskIOTestCase):
    """Missing sources: C{{}}, logged once; bugs never escape."""

    def test_noDiskstats(self) -> None:
        """No C{/proc/diskstats}: C{{}} and one warning; back, one info line."""
        events = capture_logs(self, "pistatsd.machine.readings")
        os.remove(os.path.join(self.proc_root, "diskstats"))
        self.assertEqual(self.disk_io(1.0), {})
        self.assertEqual(self.disk_io(2.0), {})
        self.assertEqual([e["log_level"] for e in events], [LogLevel.warn])
        self.stats(diskstats_line("mmcblk0"))
        self.assertEqual(list(self.disk_io(3.0)), ["mmcblk0"])
        self.assertEqual([e["log_level"] for e in events], [LogLevel.warn, LogLevel.info])

    def test_noSysBlock(self) -> None:
        """A container without C{/sys/block}: C{{}}, one info line however many samples."""
        events = capture_logs(self, "pistatsd.machine.readings")
        shutil.rmtree(os.path.join(self.sys_root, "block"))
        for when in (1.0, 2.0, 3.0 + REDISCOVER_SECONDS):
            self.assertEqual(self.disk_io(when), {})
        self.assertEqual([e["log_level"] for e in events], [LogLevel.info])

    def test_unexpectedErrorNeverEscapes(self) -> None:
        """A bug inside: C{{}} and one traceback per episode."""
        self.patch(diskio_module, "parse_diskstats", lambda text, names=None: 1 / 0)
        self.assertEqual(self.disk_io(1.0), {})
        self.assertEqual(self.disk_io(2.0), {})
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


class EmptyTreeTests(SynchronousTestCase):
    def test_nothingAtAll(self) -> None:
        """Empty roots: an empty map, no exception."""
        self.assertEqual(DiskIOCollector(tree(self), tree(self)).section(1.0), {"disk_io": {}})
