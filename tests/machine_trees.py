"""Fixture sysfs/procfs trees for the whole-machine collectors, laid out as real machines have them.

The layout copies a Raspberry Pi 4 running Raspberry Pi OS (the firmware's
C{get_throttled}, the C{rpi_volt} hwmon chip with its alarm and no voltage
reading, cpufreq C{policy0}, an SD card as C{mmcblk0}, zram swap, Ethernet
and Wi-Fi) plus what a busier machine adds (a Docker bridge and its
C{veth}, a bond with two members, a fan chip).  In a real sysfs,
C{class/net/<if>} and C{block/<dev>} are symlinks and C{device} a link into
C{devices/}; a directory answers C{exists()} the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from twisted.trial.unittest import SynchronousTestCase

from pistatsd.sysinfo import THROTTLED_PATH

NET_DEV_HEADER = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|"
    "bytes    packets errs drop fifo colls carrier compressed\n"
)

WIRELESS_HEADER = (
    "Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE\n"
    " face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22\n"
)


def write(root: str, relative: str, text: str) -> str:
    """Create C{root/relative} holding C{text} (directories as needed); its path."""
    path = os.path.join(root, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def mkdir(root: str, relative: str) -> None:
    """Create the directory C{root/relative}."""
    os.makedirs(os.path.join(root, relative), exist_ok=True)


def tree(case: SynchronousTestCase) -> str:
    """A new empty directory for a fixture tree (the test runs in its own tmp dir)."""
    root = os.path.abspath(case.mktemp())
    os.makedirs(root)
    return root


def net_dev_line(name: str, rx: tuple[int, ...], tx: tuple[int, ...]) -> str:
    """One C{/proc/net/dev} line: C{rx}, C{tx} are (bytes, packets, errs, drop), padded to 8."""
    rx8 = (rx + (0,) * 8)[:8]
    tx8 = (tx + (0,) * 8)[:8]
    return f"{name:>6}: " + " ".join(str(v) for v in rx8 + tx8) + "\n"


def net_dev(interfaces: Mapping[str, tuple[tuple[int, ...], tuple[int, ...]]]) -> str:
    """The whole text of C{/proc/net/dev} for C{{name: (rx, tx)}}."""
    return NET_DEV_HEADER + "".join(
        net_dev_line(name, rx, tx) for name, (rx, tx) in interfaces.items()
    )


def interface(
    sys_root: str,
    name: str,
    *,
    physical: bool = True,
    operstate: str = "up",
    speed: str | None = "1000",
    kind: int = 1,
    carrier: str | None = "1",
    extra: tuple[str, ...] = (),
) -> None:
    """C{class/net/<name>/} as the kernel lays it out; C{extra} names more subdirectories."""
    base = f"class/net/{name}"
    write(sys_root, f"{base}/operstate", operstate + "\n")
    write(sys_root, f"{base}/type", f"{kind}\n")
    if speed is not None:  # the kernel answers EINVAL for Wi-Fi, virtual links, links down
        write(sys_root, f"{base}/speed", speed + "\n")
    if carrier is not None:
        write(sys_root, f"{base}/carrier", carrier + "\n")
    if physical:
        mkdir(sys_root, f"{base}/device")
    for sub in extra:
        mkdir(sys_root, f"{base}/{sub}")


def diskstats_line(
    name: str,
    reads: int = 0,
    read_sectors: int = 0,
    writes: int = 0,
    written_sectors: int = 0,
    io_ticks: int = 0,
    major: int = 179,
    minor: int = 0,
) -> str:
    """One C{/proc/diskstats} line in the 20-field format of Linux 5.5 and later."""
    fields = [reads, 0, read_sectors, 0, writes, 0, written_sectors, 0, 0, io_ticks, 0]
    fields += [0] * 6  # discards (4) and flushes (2)
    return f"{major:4d} {minor:7d} {name} " + " ".join(map(str, fields)) + "\n"


def block_device(sys_root: str, name: str, *, physical: bool = True) -> None:
    """C{block/<name>/} with C{device} (hardware) or without (zram, loop, dm-*)."""
    write(sys_root, f"block/{name}/queue/rotational", "0\n")
    if physical:
        mkdir(sys_root, f"block/{name}/device")


def raspberry_pi(case: SynchronousTestCase) -> tuple[str, str]:
    """C{(sys_root, proc_root)} of a Raspberry Pi 4 on Ethernet and Wi-Fi, booted from SD."""
    sys_root, proc_root = tree(case), tree(case)
    write(sys_root, THROTTLED_PATH, "0\n")
    write(sys_root, "devices/system/cpu/cpufreq/policy0/scaling_cur_freq", "1500000\n")
    write(sys_root, "class/hwmon/hwmon0/name", "cpu_thermal\n")
    write(sys_root, "class/hwmon/hwmon0/temp1_input", "48300\n")
    write(sys_root, "class/hwmon/hwmon1/name", "rpi_volt\n")
    write(sys_root, "class/hwmon/hwmon1/in0_lcrit_alarm", "0\n")

    interface(sys_root, "lo", physical=False, operstate="unknown", speed=None, kind=772)
    interface(sys_root, "eth0")
    interface(sys_root, "wlan0", speed=None, carrier="1", extra=("wireless", "phy80211"))
    write(
        proc_root,
        "net/dev",
        net_dev(
            {
                "lo": ((5000, 50), (5000, 50)),
                "eth0": ((1000, 10, 1, 2), (2000, 20, 3, 4)),
                "wlan0": ((300, 3), (400, 4)),
            }
        ),
    )
    write(
        proc_root,
        "net/wireless",
        WIRELESS_HEADER
        + " wlan0: 0000   52.  -58.  -256        0      0      0      0      0        0\n",
    )

    block_device(sys_root, "mmcblk0")
    block_device(sys_root, "zram0", physical=False)
    block_device(sys_root, "loop0", physical=False)
    write(sys_root, "block/mmcblk0/mmcblk0p1/partition", "1\n")
    write(
        proc_root,
        "diskstats",
        diskstats_line("loop0", reads=9, major=7)
        + diskstats_line("mmcblk0", reads=100, read_sectors=2000, writes=50, written_sectors=800)
        + diskstats_line("mmcblk0p1", reads=10, read_sectors=200, minor=1)
        + diskstats_line("zram0", writes=70, written_sectors=560, major=254),
    )
    return sys_root, proc_root
