"""Tests for L{pistatsd.machine.power}: throttle flag change times and Pi voltages."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pistatsd.machine import power as power_module
from pistatsd.machine.power import FLAGS, REDISCOVER_SECONDS, FlagChanges, PiPower
from pistatsd.sysinfo import THROTTLE_FLAGS, THROTTLED_PATH, SystemCollector, parse_throttled
from tests.machine_trees import raspberry_pi, tree, write
from tests.unit.test_sysinfo import FakePsutil

NEVER = dict.fromkeys(FLAGS)


class FlagChangesTests(SynchronousTestCase):
    def observe(self, changes: FlagChanges, word: str, timestamp: float) -> dict[str, object]:
        flags = parse_throttled(word)
        return changes.observe(flags["now"], flags["since_boot"], timestamp)

    def test_sameFlagsAsSysinfo(self) -> None:
        """The flag names are the ones the throttle word is decoded into."""
        self.assertEqual(FLAGS, THROTTLE_FLAGS)

    def test_nullUntilSeenChanging(self) -> None:
        """The first reading has nothing to compare with; steady flags never change."""
        changes = FlagChanges()
        self.assertEqual(self.observe(changes, "50005", 100.0), NEVER)
        self.assertEqual(self.observe(changes, "50005", 101.0), NEVER)

    def test_riseAndFall(self) -> None:
        """Each flag is dated by the sample that saw it flip, either way."""
        changes = FlagChanges()
        self.observe(changes, "0", 100.0)
        seen = self.observe(changes, "50005", 101.5)
        self.assertEqual(seen, {**NEVER, "under_voltage": 101.5, "throttled": 101.5})
        seen = self.observe(changes, "50004", 107.0)
        self.assertEqual(seen, {**NEVER, "under_voltage": 107.0, "throttled": 101.5})

    def test_cameAndWentBetweenSamples(self) -> None:
        """A since-boot bit rising while "now" stayed clear: it happened, dated to that sample."""
        changes = FlagChanges()
        self.observe(changes, "0", 100.0)
        seen = self.observe(changes, "80000", 101.0)
        self.assertEqual(seen, {**NEVER, "soft_temp_limit": 101.0})
        self.assertEqual(self.observe(changes, "80000", 102.0)["soft_temp_limit"], 101.0)

    def test_resultIsACopy(self) -> None:
        """A published snapshot is not changed by later samples."""
        changes = FlagChanges()
        self.observe(changes, "0", 100.0)
        first = self.observe(changes, "1", 101.0)
        self.observe(changes, "0", 102.0)
        self.assertEqual(first["under_voltage"], 101.0)


class VoltageTests(SynchronousTestCase):
    def power(self, root: str, when: float = 1.0) -> dict[str, object]:
        return PiPower(root).annotate(parse_throttled("0"), when, 1000.0)

    def test_raspberryPi4(self) -> None:
        """rpi_volt has an alarm and no reading: both voltages null."""
        sys_root, _ = raspberry_pi(self)
        result = self.power(sys_root)
        self.assertIsNone(result["core_volts"])
        self.assertIsNone(result["input_volts"])

    def test_labelledRails(self) -> None:
        """hwmon inputs labelled VDD_CORE and EXT5V: millivolts to volts."""
        root = tree(self)
        write(root, "class/hwmon/hwmon3/name", "pmic\n")
        write(root, "class/hwmon/hwmon3/in0_label", "VDD_CORE_V\n")
        write(root, "class/hwmon/hwmon3/in0_input", "875\n")
        write(root, "class/hwmon/hwmon3/in1_label", "EXT5V\n")
        write(root, "class/hwmon/hwmon3/in1_input", "5112\n")
        write(root, "class/hwmon/hwmon3/in2_label", "3V3_SYS\n")
        write(root, "class/hwmon/hwmon3/in2_input", "3300\n")
        result = self.power(root)
        self.assertEqual((result["core_volts"], result["input_volts"]), (0.875, 5.112))

    def test_unlabelledIgnored(self) -> None:
        """An input without a label (or another rail) says nothing about the core."""
        root = tree(self)
        write(root, "class/hwmon/hwmon0/in0_input", "1200\n")
        write(root, "class/hwmon/hwmon0/in1_label", "VDDIO\n")
        write(root, "class/hwmon/hwmon0/in1_input", "1800\n")
        self.assertIsNone(self.power(root)["core_volts"])

    def test_railAppearsLater(self) -> None:
        """A driver loaded after start is found at the next search of hwmon."""
        root = tree(self)
        power = PiPower(root)
        flags = parse_throttled("0")
        self.assertIsNone(power.annotate(flags, 1.0, 1.0)["core_volts"])
        write(root, "class/hwmon/hwmon0/in0_label", "vdd_core\n")
        write(root, "class/hwmon/hwmon0/in0_input", "800\n")
        self.assertIsNone(power.annotate(flags, 2.0, 2.0)["core_volts"])
        later = 1.0 + REDISCOVER_SECONDS
        self.assertEqual(power.annotate(flags, later, later)["core_volts"], 0.8)

    def test_unreadableRailIsNullAndLoggedOnce(self) -> None:
        """A rail whose reading cannot be parsed gives null, and one warning, not an error."""
        root = tree(self)
        write(root, "class/hwmon/hwmon0/in0_label", "VDD_CORE\n")
        write(root, "class/hwmon/hwmon0/in0_input", "garbage\n")
        power = PiPower(root)
        for when in (1.0, 2.0):
            self.assertIsNone(power.annotate(parse_throttled("0"), when, when)["core_volts"])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_unexpectedErrorNeverEscapes(self) -> None:
        """A bug inside keeps the flags, with nulls, and logs one traceback per episode."""
        self.patch(power_module, "read_text", lambda path: 1 / 0)
        root = tree(self)
        write(root, "class/hwmon/hwmon0/in0_label", "x\n")
        power = PiPower(root)
        for when in (1.0, 2.0):
            result = power.annotate(parse_throttled("1"), when, when)
            self.assertEqual(result["raw"], "0x1")
            self.assertEqual(result["changed"], NEVER)
            self.assertIsNone(result["core_volts"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


class SnapshotTests(SynchronousTestCase):
    """C{throttled} in the snapshot: the section 3 shape, plus section 11's additions."""

    def collector(self, sys_root: str, proc_root: str) -> SystemCollector:
        return SystemCollector(psutil=FakePsutil(), sys_root=sys_root, proc_root=proc_root)

    def test_raspberryPi(self) -> None:
        """Keys of section 3 kept; C{changed} dated with the snapshot's wall-clock time."""
        sys_root, proc_root = raspberry_pi(self)
        c = self.collector(sys_root, proc_root)
        first = c.collect(10.0, timestamp=1732240000.0)["throttled"]
        self.assertEqual(
            set(first), {"raw", "now", "since_boot", "changed", "core_volts", "input_volts"}
        )
        self.assertEqual(first["changed"], NEVER)
        write(sys_root, THROTTLED_PATH, "50005\n")
        second = c.collect(11.0, timestamp=1732240001.5)["throttled"]
        self.assertEqual(second["raw"], "0x50005")
        self.assertTrue(second["now"]["under_voltage"])
        self.assertEqual(second["changed"]["under_voltage"], 1732240001.5)
        self.assertIsNone(second["changed"]["freq_capped"])

    def test_changesSurviveAnUnreadableSample(self) -> None:
        """A sample without the file does not forget what was seen."""
        sys_root, proc_root = raspberry_pi(self)
        c = self.collector(sys_root, proc_root)
        c.collect(1.0, timestamp=100.0)
        write(sys_root, THROTTLED_PATH, "1\n")
        c.collect(2.0, timestamp=101.0)
        write(sys_root, THROTTLED_PATH, "junk\n")
        self.assertNotIn("throttled", c.collect(3.0, timestamp=102.0))
        write(sys_root, THROTTLED_PATH, "1\n")
        self.assertEqual(
            c.collect(4.0, timestamp=103.0)["throttled"]["changed"]["under_voltage"], 101.0
        )

    def test_notAPi(self) -> None:
        """Elsewhere nothing changes: no C{throttled} key at all."""
        self.assertNotIn("throttled", self.collector(tree(self), tree(self)).collect(1.0))
