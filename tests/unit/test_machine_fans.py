"""Tests for L{pistatsd.machine.fans}: hwmon fan inputs from fixture trees."""

from __future__ import annotations

import os

from twisted.logger import LogLevel
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.machine import fans as fans_module
from pistatsd.machine.fans import REDISCOVER_SECONDS, FanCollector
from tests.machine_trees import raspberry_pi, tree, write
from tests.unit.test_sysinfo import capture_logs


class FanTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = tree(self)

    def fans(self, when: float = 1.0, collector: FanCollector | None = None) -> object:
        return (collector or FanCollector(self.root)).section(when)

    def test_raspberryPi4(self) -> None:
        """A Pi 4's fans (GPIO-switched, no tachometer) expose no speed: C{{}}."""
        sys_root, _ = raspberry_pi(self)
        self.assertEqual(FanCollector(sys_root).section(1.0), {"fans": {}})

    def test_raspberryPi5(self) -> None:
        """The Pi 5 fan header's chip: C{pwmfan/fan1}."""
        write(self.root, "class/hwmon/hwmon2/name", "pwmfan\n")
        write(self.root, "class/hwmon/hwmon2/fan1_input", "3054\n")
        write(self.root, "class/hwmon/hwmon2/pwm1", "120\n")
        self.assertEqual(self.fans(), {"fans": {"pwmfan/fan1": 3054}})

    def test_labels(self) -> None:
        """C{fan<N>_label} names the fan where the driver gives one."""
        write(self.root, "class/hwmon/hwmon0/name", "nct6775\n")
        write(self.root, "class/hwmon/hwmon0/fan1_input", "1200\n")
        write(self.root, "class/hwmon/hwmon0/fan1_label", "CPU Fan\n")
        write(self.root, "class/hwmon/hwmon0/fan2_input", "0\n")
        self.assertEqual(self.fans(), {"fans": {"nct6775/CPU Fan": 1200, "nct6775/fan2": 0}})

    def test_sameChipTwice(self) -> None:
        """Two chips of one name are told apart by their hwmon directory."""
        for n, rpm in ((1, "100"), (10, "200")):
            write(self.root, f"class/hwmon/hwmon{n}/name", "pwmfan\n")
            write(self.root, f"class/hwmon/hwmon{n}/fan1_input", rpm + "\n")
        self.assertEqual(self.fans(), {"fans": {"pwmfan/fan1": 100, "pwmfan@hwmon10/fan1": 200}})

    def test_noHwmon(self) -> None:
        """No hwmon at all (a VM): C{{}}, nothing logged."""
        events = capture_logs(self, "pistatsd.machine.readings")
        self.assertEqual(self.fans(), {"fans": {}})
        self.assertEqual(events, [])

    def test_speedsFollow(self) -> None:
        """Each sample reads the speed again."""
        path = write(self.root, "class/hwmon/hwmon0/fan1_input", "1000\n")
        c = FanCollector(self.root)
        self.assertEqual(self.fans(1.0, c), {"fans": {"hwmon0/fan1": 1000}})
        with open(path, "w") as f:
            f.write("1500\n")
        self.assertEqual(self.fans(2.0, c), {"fans": {"hwmon0/fan1": 1500}})

    def test_unreadableLeftOut(self) -> None:
        """A fan that cannot be read is left out, one warning; found again, one info line."""
        events = capture_logs(self, "pistatsd.machine.readings")
        write(self.root, "class/hwmon/hwmon0/name", "pwmfan\n")
        path = write(self.root, "class/hwmon/hwmon0/fan1_input", "3000\n")
        write(self.root, "class/hwmon/hwmon0/fan2_input", "2000\n")
        c = FanCollector(self.root)
        self.fans(1.0, c)
        os.remove(path)
        self.assertEqual(self.fans(2.0, c), {"fans": {"pwmfan/fan2": 2000}})
        self.assertEqual(self.fans(3.0, c), {"fans": {"pwmfan/fan2": 2000}})
        self.assertEqual([e["log_level"] for e in events], [LogLevel.warn])
        write(self.root, "class/hwmon/hwmon0/fan1_input", "3100\n")
        self.assertEqual(self.fans(4.0, c), {"fans": {"pwmfan/fan1": 3100, "pwmfan/fan2": 2000}})
        self.assertEqual([e["log_level"] for e in events], [LogLevel.warn, LogLevel.info])

    def test_fanAppears(self) -> None:
        """A fan chip found after start shows at the next listing."""
        c = FanCollector(self.root)
        self.assertEqual(self.fans(1.0, c), {"fans": {}})
        write(self.root, "class/hwmon/hwmon0/fan1_input", "900\n")
        self.assertEqual(self.fans(2.0, c), {"fans": {}})
        self.assertEqual(self.fans(1.0 + REDISCOVER_SECONDS, c), {"fans": {"hwmon0/fan1": 900}})

    def test_unexpectedErrorNeverEscapes(self) -> None:
        """A bug inside: C{{}} and one traceback per episode."""
        write(self.root, "class/hwmon/hwmon0/fan1_input", "900\n")
        self.patch(fans_module, "read_int", lambda path: 1 / 0)
        c = FanCollector(self.root)
        self.assertEqual(self.fans(1.0, c), {"fans": {}})
        self.assertEqual(self.fans(2.0, c), {"fans": {}})
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
