"""Realistic snapshots of the whole machine (SPEC 11), for the output tests.

Every output (C{/stats/<part>}, C{/metrics}, InfluxDB, the dashboard, the
client's summary) is checked against these, so each shape that can happen on
a real machine is here once: a Raspberry Pi in steady state, the same Pi's
very first sample (every rate null), a PC with no Pi firmware, and a machine
where almost everything is missing, empty or null.  Names are the awkward
ones real machines have: a mount point with a space (and one that is not
valid UTF-8), interface names with quotes and backslashes, a process name
with a tag in it.
"""

from __future__ import annotations

import copy
from typing import Any

Snapshot = dict[str, Any]

GiB = 1024**3

PI: Snapshot = {
    "timestamp": 1732240000.5,
    "hostname": "pi",
    "cpu": {
        "percent": 12.5,
        "per_cpu": [10.0, 15.0, 12.0, 13.0],
        "count": 4,
        "load": [0.42, 0.3, 0.25],
        "interval": 1.0,
        "freq_mhz": 1800.0,
    },
    "temperature": {"celsius": 48.3, "sensors": {"cpu_thermal": 48.3, "rp1_adc": 41.0}},
    "memory": {"total": 4 * GiB, "available": 3 * GiB, "used": GiB, "percent": 25.0},
    "swap": {"total": 512 * 1024**2, "used": 0, "percent": 0.0},
    "uptime": {"seconds": 93784.2, "boot_time": 1732146216.3},
    "disk": {"path": "/", "total": 29 * GiB, "used": 27 * GiB, "free": 2 * GiB, "percent": 93.1},
    "net": {
        "bytes_sent": 7340032,
        "bytes_recv": 123456789,
        "packets_sent": 50000,
        "packets_recv": 90000,
        "rx_bytes_per_s": 1536000.0,
        "tx_bytes_per_s": 20480.0,
        "interfaces": {
            "eth0": {
                "up": True,
                "virtual": False,
                "speed_mbps": 1000,
                "rx_bytes": 123000000,
                "tx_bytes": 7000000,
                "rx_bytes_per_s": 1536000.0,
                "tx_bytes_per_s": 20000.0,
                "rx_errors": 0,
                "tx_errors": 0,
                "rx_drops": 3,
                "tx_drops": 0,
            },
            "wlan0": {
                "up": True,
                "virtual": False,
                "speed_mbps": None,
                "rx_bytes": 456789,
                "tx_bytes": 340032,
                "rx_bytes_per_s": 0.0,
                "tx_bytes_per_s": 480.0,
                "rx_errors": 1,
                "tx_errors": 0,
                "rx_drops": 0,
                "tx_drops": 2,
                "wifi": {"signal_dbm": -55, "link_quality": 0.71},
            },
            'br-"lan\\1': {
                "up": False,
                "virtual": True,
                "speed_mbps": None,
                "rx_bytes": 0,
                "tx_bytes": 0,
                "rx_bytes_per_s": None,
                "tx_bytes_per_s": None,
                "rx_errors": 0,
                "tx_errors": 0,
                "rx_drops": 0,
                "tx_drops": 0,
            },
        },
    },
    "filesystems": [
        {
            "mount": "/",
            "device": "/dev/mmcblk0p2",
            "fstype": "ext4",
            "total": 29 * GiB,
            "used": 27 * GiB,
            "free": 2 * GiB,
            "percent": 93.1,
            "inodes_percent": 12.0,
            "read_only": False,
        },
        {
            "mount": "/boot/firmware",
            "device": "/dev/mmcblk0p1",
            "fstype": "vfat",
            "total": 512 * 1024**2,
            "used": 64 * 1024**2,
            "free": 448 * 1024**2,
            "percent": 12.5,
            "inodes_percent": None,
            "read_only": True,
        },
        {
            "mount": "/media/My Photos",
            "device": "/dev/sda1",
            "fstype": "exfat",
            "total": 1000 * GiB,
            "used": 400 * GiB,
            "free": 600 * GiB,
            "percent": 40.0,
            "inodes_percent": 0.0,
            "read_only": False,
        },
        {
            "mount": "/mnt/nas",
            "device": "nas:/export",
            "fstype": "nfs4",
            "total": None,
            "used": None,
            "free": None,
            "percent": None,
            "inodes_percent": None,
            "read_only": False,
            "error": "timeout",
        },
    ],
    "disk_io": {
        "mmcblk0": {
            "read_bytes_per_s": 4096.0,
            "write_bytes_per_s": 2621440.0,
            "reads_per_s": 1.0,
            "writes_per_s": 20.0,
            "busy_percent": 7.5,
            "written_bytes": 52613349376,
            "health": {"life_time_percent": [10, 20], "pre_eol": "normal"},
        },
        "sda": {
            "read_bytes_per_s": 0.0,
            "write_bytes_per_s": 0.0,
            "reads_per_s": 0.0,
            "writes_per_s": 0.0,
            "busy_percent": 0.0,
            "written_bytes": 1048576,
        },
    },
    "processes": {
        "total": 182,
        "running": 2,
        "zombie": 1,
        "top_cpu": [
            {"pid": 812, "name": "python3", "cpu_percent": 35.2, "rss": 88 * 1024**2},
            {"pid": 990, "name": "<script>x</script>", "cpu_percent": 4.1, "rss": 12 * 1024**2},
            {"pid": 1, "name": "systemd", "cpu_percent": 0.3, "rss": 11 * 1024**2},
            {"pid": 500, "name": "sshd", "cpu_percent": 0.1, "rss": 8 * 1024**2},
            {"pid": 501, "name": "cron", "cpu_percent": 0.0, "rss": 3 * 1024**2},
        ],
        "top_memory": [
            {"pid": 812, "name": "python3", "cpu_percent": 35.2, "rss": 88 * 1024**2},
            {"pid": 700, "name": "influxd", "cpu_percent": 0.0, "rss": 60 * 1024**2},
            {"pid": 990, "name": "<script>x</script>", "cpu_percent": 4.1, "rss": 12 * 1024**2},
        ],
    },
    "fans": {"pwmfan/fan1": 3121},
    "throttled": {
        "raw": "0x50005",
        "now": {
            "under_voltage": True,
            "freq_capped": False,
            "throttled": True,
            "soft_temp_limit": False,
        },
        "since_boot": {
            "under_voltage": True,
            "freq_capped": True,
            "throttled": True,
            "soft_temp_limit": False,
        },
        "changed": {
            "under_voltage": 1732239000.0,
            "freq_capped": 1732230000.0,
            "throttled": 1732239000.0,
            "soft_temp_limit": None,
        },
        "core_volts": 0.8625,
        "input_volts": 4.87,
    },
}
"""A Raspberry Pi in steady state: every part present, with the awkward cases in it."""


def first_sample() -> Snapshot:
    """The same Pi's first snapshot: no window yet, so every rate is null."""
    snap = copy.deepcopy(PI)
    snap["cpu"].update(percent=None, per_cpu=[None] * 4, interval=None)
    snap["net"].update(rx_bytes_per_s=None, tx_bytes_per_s=None)
    for interface in snap["net"]["interfaces"].values():
        interface.update(rx_bytes_per_s=None, tx_bytes_per_s=None)
    for device in snap["disk_io"].values():
        for key in ("read_bytes_per_s", "write_bytes_per_s", "reads_per_s", "writes_per_s"):
            device[key] = None
        device["busy_percent"] = None
    # No CPU window for any process yet: no top-CPU list, memory is known.
    snap["processes"]["top_cpu"] = None
    for entry in snap["processes"]["top_memory"]:
        entry["cpu_percent"] = None
    return snap


PC: Snapshot = {
    "timestamp": 1732240000.5,
    "hostname": "lab",
    "cpu": {
        "percent": 3.0,
        "per_cpu": [3.0, 3.0],
        "count": 2,
        "load": [0.1, 0.1, 0.1],
        "interval": 1.0,
        "freq_mhz": None,
    },
    "temperature": {"celsius": None, "sensors": {}},
    "memory": {"total": 8 * GiB, "available": 6 * GiB, "used": 2 * GiB, "percent": 25.0},
    "swap": {"total": 0, "used": 0, "percent": 0.0},
    "uptime": {"seconds": 60.0, "boot_time": 1732239940.5},
    "disk": {"path": "/", "total": 100 * GiB, "used": 10 * GiB, "free": 90 * GiB, "percent": 10.0},
    "net": {
        "bytes_sent": 0,
        "bytes_recv": 0,
        "packets_sent": 0,
        "packets_recv": 0,
        "rx_bytes_per_s": 0.0,
        "tx_bytes_per_s": 0.0,
        "interfaces": {},
    },
    "filesystems": [],
    "disk_io": {},
    "processes": {"total": 90, "running": 1, "zombie": 0, "top_cpu": [], "top_memory": []},
    "fans": {},
}
"""A PC: no Pi firmware (no C{throttled}), no sensors, empty maps and lists."""

BARE: Snapshot = {
    "timestamp": 1732240000.5,
    "hostname": "",
    "cpu": None,
    "temperature": None,
    "memory": None,
    "uptime": None,
    "net": None,
    "filesystems": None,
    "disk_io": None,
    "processes": None,
    "fans": None,
}
"""Every part failing at once: each output must still answer."""

OLD: Snapshot = {
    "timestamp": 1732240000.5,
    "hostname": "old",
    "cpu": {"percent": 1.0, "per_cpu": [1.0], "count": 1, "load": [0.0, 0.0, 0.0], "interval": 1.0},
    "temperature": {"celsius": 40.0, "sensors": {"cpu_thermal": 40.0}},
    "memory": {"total": GiB, "available": GiB, "used": 0, "percent": 1.0},
    "swap": {"total": 0, "used": 0, "percent": 0.0},
    "uptime": {"seconds": 5.0, "boot_time": 1732239995.5},
    "disk": {"path": "/", "total": GiB, "used": 0, "free": GiB, "percent": 1.0},
    "net": {"bytes_sent": 10, "bytes_recv": 20, "packets_sent": 1, "packets_recv": 2},
}
"""The snapshot of SPEC 3 alone, without any part of SPEC 11 (an older collector)."""

ODD_MOUNT = "/mnt/caf\udce9"
"""A mount point whose name is not valid UTF-8 (Latin-1 'é'), as Python decodes it."""


def with_odd_mount() -> Snapshot:
    """The Pi with one more file system, whose mount point is not valid UTF-8."""
    snap = copy.deepcopy(PI)
    snap["filesystems"].append(
        {
            "mount": ODD_MOUNT,
            "device": "/dev/sdb1",
            "fstype": "ext4",
            "total": GiB,
            "used": 0,
            "free": GiB,
            "percent": 0.0,
            "inodes_percent": 0.0,
            "read_only": False,
        }
    )
    return snap


ALL = {"pi": PI, "first": first_sample(), "pc": PC, "bare": BARE, "old": OLD}
"""Every fixture by name, for tests that run each output over all of them."""
