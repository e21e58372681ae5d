"""The C{disk_io} part: per-disk throughput, operations, busy time, bytes written, eMMC wear.

Counters come from C{/proc/diskstats} (sectors there are always 512 bytes,
whatever the device's own sector size).  Which names are disks comes from
C{/sys/block}: an entry with a C{device} link is real hardware (C{mmcblk0},
C{sda}, C{nvme0n1}, a VM's C{vda}).  That leaves out, on purpose:

 - partitions (not in C{/sys/block} at all; their I/O is their disk's);
 - C{loop*} and C{ram*} (files and memory, not storage);
 - C{zram*}: compressed swap I{in RAM}, the default on Raspberry Pi OS
   since Bookworm; counting it as a disk would make an idle SD card look busy;
 - C{dm-*} and C{md*} (LVM, LUKS, software RAID): layers over real disks
   whose I/O the disks below already show, so a disk would count twice;
 - C{mmcblk0boot0}/C{boot1}: an eMMC's tiny boot areas, the same chip as
   C{mmcblk0}.

eMMC chips report their wear (JEDEC C{EXT_CSD}) as C{device/life_time} and
C{device/pre_eol_info}; SD cards have no such registers, so a Pi booting
from SD shows no C{health}, and a Compute Module's eMMC does.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Any, NamedTuple

from pistatsd.machine.readings import Troubles, rate, read_text

SECTOR_BYTES = 512

REDISCOVER_SECONDS = 30.0
"""How often C{/sys/block} is listed again, so a plugged USB disk appears."""

HEALTH_SECONDS = 3600.0
"""How often eMMC wear is read again: it moves over months, not seconds."""

PRE_EOL = {1: "normal", 2: "warning", 3: "urgent"}
"""JEDEC C{PRE_EOL_INFO}: spare blocks used (0x01 under 80 %, 0x02 80 %, 0x03 90 %)."""

_EMMC_BOOT_AREA = re.compile(r"mmcblk\d+boot\d+$")


class DiskCounters(NamedTuple):
    """The fields of one C{/proc/diskstats} line that C{disk_io} uses."""

    reads: int
    read_sectors: int
    writes: int
    written_sectors: int
    io_ticks_ms: int
    """Milliseconds during which the device had I/O in flight: busy time."""


def parse_diskstats(text: str, names: Collection[str] | None = None) -> dict[str, DiskCounters]:
    """Counters per device name from the text of C{/proc/diskstats}; malformed lines are skipped.

    Only the devices in C{names}, when given: partitions and loop devices
    are most of the lines and need not be parsed.

    A line is C{major minor name} and then (since Linux 2.6) at least 11
    numbers: reads, reads merged, sectors read, ms reading, writes, writes
    merged, sectors written, ms writing, in flight, ms doing I/O, weighted ms.
    """
    found: dict[str, DiskCounters] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 13 or (names is not None and fields[2] not in names):
            continue
        try:
            v = [int(field) for field in fields[3:13]]
        except ValueError:
            continue
        found[fields[2]] = DiskCounters(v[0], v[2], v[4], v[6], v[9])
    return found


def parse_life_time(text: str) -> list[int | None]:
    """C{device/life_time} (C{"0x01 0x02"}, types A and B) as percentages of life used.

    JEDEC's C{DEVICE_LIFE_TIME_EST} says 0x01 for 0-10 % used, 0x02 for
    10-20 %, ..., 0x0A for 90-100 % and 0x0B for "exceeded": each step is
    reported as its upper bound, value x 10 (so 110 means past its rated
    life).  0x00 ("not defined") and anything else is C{None}.
    """
    values: list[int | None] = []
    for word in text.split():
        try:
            value = int(word, 16)
        except ValueError:
            values.append(None)
            continue
        values.append(value * 10 if 1 <= value <= 11 else None)
    return values


def parse_pre_eol(text: str) -> str | None:
    """C{device/pre_eol_info} (C{"0x01"}) as C{normal}, C{warning}, C{urgent}, or C{None}."""
    try:
        return PRE_EOL.get(int(text.split()[0], 16))
    except (ValueError, IndexError):
        return None


class DiskIOCollector:
    """Builds the C{disk_io} part; keeps the previous counters, so it can give rates.

    Never raises: without C{/proc/diskstats} or C{/sys/block} (some
    containers) C{disk_io} is C{{}}, logged once; a counter that went
    backwards makes that disk's rates null for one sample.
    """

    def __init__(self, sys_root: str | Path = "/sys", proc_root: str | Path = "/proc") -> None:
        """
        @param sys_root: where sysfs is mounted; tests point it at a fixture tree.
        @param proc_root: where procfs is mounted; likewise.
        """
        self._block = Path(sys_root) / "block"
        self._diskstats = str(Path(proc_root) / "diskstats")
        self._disks: list[str] | None = None
        self._listed_at = 0.0
        self._health: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._previous: dict[str, DiskCounters] = {}
        self._previous_when: float | None = None
        self._troubles = Troubles("disk_io")

    def section(self, when: float) -> dict[str, Any]:
        """C{{"disk_io": {name: {...}}}} at clock time C{when}."""
        try:
            return {"disk_io": self._disk_io(when)}
        except Exception:
            self._troubles.failure("bug", "cannot build the disk_io part; it is empty")
            return {"disk_io": {}}

    def _disk_io(self, when: float) -> dict[str, Any]:
        text = read_text(self._diskstats)
        if text is None:
            self._troubles.warn("diskstats", "cannot read {path}", path=self._diskstats)
            return {}
        self._troubles.clear("diskstats")
        disks = self._discover(when)
        counters = parse_diskstats(text, set(disks))
        disks = [name for name in disks if name in counters]
        elapsed = None if self._previous_when is None else when - self._previous_when
        result = {name: self._disk(name, counters[name], elapsed, when) for name in disks}
        self._previous = counters
        self._previous_when = when
        return result

    def _disk(
        self, name: str, now: DiskCounters, elapsed: float | None, when: float
    ) -> dict[str, Any]:
        before = self._previous.get(name)
        if before is not None and any(a < b for a, b in zip(now, before, strict=True)):
            before = None  # reset or wrapped: no rates this time, a new baseline
        entry: dict[str, Any] = {
            "read_bytes_per_s": _per_second(before, now, elapsed, "read_sectors", SECTOR_BYTES),
            "write_bytes_per_s": _per_second(before, now, elapsed, "written_sectors", SECTOR_BYTES),
            "reads_per_s": _per_second(before, now, elapsed, "reads"),
            "writes_per_s": _per_second(before, now, elapsed, "writes"),
            "busy_percent": _busy_percent(before, now, elapsed),
            "written_bytes": now.written_sectors * SECTOR_BYTES,
        }
        health = self._emmc_health(name, when)
        if health is not None:
            entry["health"] = health
        return entry

    def _discover(self, when: float) -> list[str]:
        """The whole, real disks in C{/sys/block}, listed again every L{REDISCOVER_SECONDS}."""
        if self._disks is not None and when - self._listed_at < REDISCOVER_SECONDS:
            return self._disks
        self._listed_at = when
        try:
            entries = sorted(path.name for path in self._block.iterdir())
        except OSError as e:
            self._troubles.note(
                "block", "no {path} ({error}); disk_io is empty", path=self._block, error=e
            )
            self._disks = []
            return self._disks
        self._troubles.clear("block")
        self._disks = [
            name
            for name in entries
            if (self._block / name / "device").exists()
            and not (self._block / name / "partition").exists()
            and not _EMMC_BOOT_AREA.match(name)
        ]
        return self._disks

    def _emmc_health(self, name: str, when: float) -> dict[str, Any] | None:
        """C{{"life_time_percent": [a, b], "pre_eol": ...}} for an eMMC, else C{None}; cached."""
        cached = self._health.get(name)
        if cached is not None and when - cached[0] < HEALTH_SECONDS:
            return cached[1]
        device = self._block / name / "device"
        life = read_text(device / "life_time")
        eol = read_text(device / "pre_eol_info")
        health = None
        if life is not None or eol is not None:
            health = {
                "life_time_percent": parse_life_time(life) if life is not None else None,
                "pre_eol": parse_pre_eol(eol) if eol is not None else None,
            }
        self._health[name] = (when, health)
        return health


def _per_second(
    before: DiskCounters | None,
    now: DiskCounters,
    elapsed: float | None,
    field: str,
    scale: int = 1,
) -> float | None:
    """The rate of one counter (times C{scale}, e.g. sectors to bytes), or C{None}."""
    previous = None if before is None else getattr(before, field) * scale
    return rate(previous, getattr(now, field) * scale, elapsed)


def _busy_percent(
    before: DiskCounters | None, now: DiskCounters, elapsed: float | None
) -> float | None:
    """Share of the window the disk had I/O in flight, 0..100, or C{None}.

    The kernel counts C{io_ticks} in jiffies turned into ms, so a window can
    show a little more than its length; it is capped at 100.
    """
    busy_ms_per_s = rate(None if before is None else before.io_ticks_ms, now.io_ticks_ms, elapsed)
    if busy_ms_per_s is None:
        return None
    return round(min(100.0, busy_ms_per_s / 10.0), 1)  # ms per 1000 ms, as a percentage
