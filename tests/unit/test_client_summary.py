"""C{pistatsd-client stats --summary}: the whole machine on one screen, from fixture snapshots."""

from __future__ import annotations

import copy
import time

from twisted.trial.unittest import SynchronousTestCase

from pistatsd.client.summary import MAX_LINES, WIDTH, shown, size, summary_lines
from tests.machine_snapshots import ALL, BARE, OLD, PC, PI, first_sample, with_odd_mount


def clock(stamp: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(stamp))


PI_SCREEN = [
    f"pi  up 1d 02:03:04  at {clock(PI['timestamp'])}",
    "cpu    12.5%  4 cores  1800 MHz  load 0.42 0.30 0.25  temp 48.3°C",
    "mem    25.0%  1.0 GiB of 4.0 GiB  swap 0.0%",
    "net   rx  1.5 MiB/s  tx 20.0 KiB/s  eth0 up, wlan0 up -55 dBm",
    "fans  pwmfan/fan1 3121 rpm",
    "io    mmcblk0    r  4.0 KiB/s  w  2.5 MiB/s  busy   7.5%  wrote 49.0 GiB",
    "io    sda        r      0 B/s  w      0 B/s  busy   0.0%  wrote 1.0 MiB",
    "filesystems",
    "  /                        [#########-]  93.1%  2.0 GiB free of 29.0 GiB  FULL",
    "  /boot/firmware           [#---------]  12.5%  448 MiB free of 512 MiB  ro",
    "  /media/My Photos         [####------]  40.0%  600 GiB free of 1000 GiB",
    "  /mnt/nas                 timeout",
    "procs 182 (2 running, 1 zombie); top CPU:",
    "   35.2%   88.0 MiB  python3 (812)",
    "    4.1%   12.0 MiB  <script>x</script> (990)",
    "    0.3%   11.0 MiB  systemd (1)",
    "power NOW: UNDER-VOLTAGE, THROTTLED  core 0.86 V  input 4.87 V",
    "      since boot: under-voltage, frequency capped, throttled",
]


def fits(lines: list[str]) -> bool:
    return len(lines) <= MAX_LINES and all(len(line) <= WIDTH for line in lines)


class SummaryTests(SynchronousTestCase):
    def test_a_pi(self) -> None:
        self.assertEqual(summary_lines(PI), PI_SCREEN)

    def test_first_sample_shows_dashes_for_rates(self) -> None:
        lines = summary_lines(first_sample())
        self.assertEqual(lines[1][:12], "cpu        -")
        self.assertEqual(lines[3], "net   rx          -  tx          -  eth0 up, wlan0 up -55 dBm")
        self.assertTrue(lines[5].startswith("io    mmcblk0    r          -  w          -"), lines)
        self.assertIn("procs 182 (2 running, 1 zombie)", lines)
        self.assertFalse([line for line in lines if "python3" in line], "no CPU window yet")

    def test_a_pc_without_power_fans_or_disks(self) -> None:
        self.assertEqual(
            summary_lines(PC),
            [
                f"lab  up 00:01:00  at {clock(PC['timestamp'])}",
                "cpu     3.0%  2 cores  load 0.10 0.10 0.10  temp -",
                "mem    25.0%  2.0 GiB of 8.0 GiB",
                "net   rx      0 B/s  tx      0 B/s",
                "procs 90 (1 running, 0 zombies)",
            ],
        )

    def test_nothing_known_still_gives_a_screen(self) -> None:
        self.assertEqual(
            summary_lines(BARE),
            [
                f"-  up -  at {clock(BARE['timestamp'])}",
                "cpu        -  load -  temp -",
                "mem        -",
            ],
        )
        self.assertEqual(
            summary_lines({}),
            ["-  up -  at --:--:--", "cpu        -  load -  temp -", "mem        -"],
        )
        self.assertEqual(len(summary_lines(OLD)), 4)

    def test_every_fixture_fits(self) -> None:
        for name, snapshot in ALL.items():
            self.assertTrue(fits(summary_lines(snapshot)), name)

    def test_a_big_machine_still_fits_one_screen(self) -> None:
        """30 file systems, 8 disks, long names: cut with '+N more', never past 24 x 80."""
        snap = copy.deepcopy(PI)
        template = PI["filesystems"][0]
        snap["filesystems"] = [
            dict(template, mount=f"/srv/very/long/mount/point/number/{i}") for i in range(30)
        ]
        snap["disk_io"] = {f"nvme{i}n1": PI["disk_io"]["sda"] for i in range(8)}
        snap["net"]["interfaces"].update(
            {f"enp{i}s0f0np0": PI["net"]["interfaces"]["eth0"] for i in range(10)}
        )
        snap["hostname"] = "h" * 200
        lines = summary_lines(snap)
        self.assertTrue(fits(lines), "\n".join(lines))
        self.assertEqual(len(lines), MAX_LINES)
        self.assertIn("io    +6 more disks", lines)
        more = [line for line in lines if line.startswith("  +") and line.endswith(" more")]
        self.assertEqual(len(more), 1, lines)
        self.assertIn("  /srv/very/lo…nt/number/0 [#########-]", "\n".join(lines))
        self.assertTrue(lines[-1].startswith("      since boot:"), "power is never cut")

    def test_names_cannot_drive_the_terminal(self) -> None:
        snap = with_odd_mount()
        snap["processes"]["top_cpu"][0]["name"] = "evil\x1b[2J\nname"
        lines = summary_lines(snap)
        self.assertFalse([line for line in lines if "\x1b" in line or "\r" in line])
        self.assertIn("   35.2%   88.0 MiB  evil\\x1b[2J\\nname (812)", lines)
        self.assertTrue(any("/mnt/caf\\udce9" in line for line in lines))
        "\n".join(lines).encode("utf-8")

    def test_units(self) -> None:
        self.assertEqual(
            [size(v) for v in (None, 0, 1023, 1024, 1536, 100 * 1024**2, 5 * 1024**4)],
            ["-", "0 B", "1023 B", "1.0 KiB", "1.5 KiB", "100 MiB", "5.0 TiB"],
        )
        self.assertEqual(shown("abcdefghij", 5), "ab…ij")
        self.assertEqual(shown(None), "-")
