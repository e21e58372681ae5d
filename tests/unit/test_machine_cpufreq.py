"""Tests for L{pistatsd.machine.cpufreq} and C{cpu.freq_mhz} in the snapshot."""

from __future__ import annotations

from twisted.logger import LogLevel
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.machine.cpufreq import REDISCOVER_SECONDS, CpuFrequency
from pistatsd.sysinfo import SystemCollector
from tests.machine_trees import raspberry_pi, tree, write
from tests.unit.test_sysinfo import FakePsutil, capture_logs

POLICY = "devices/system/cpu/cpufreq/policy{n}/scaling_cur_freq"


class CpuFrequencyTests(SynchronousTestCase):
    def test_raspberryPi(self) -> None:
        """One policy for every core: its frequency, kHz to MHz."""
        sys_root, _ = raspberry_pi(self)
        self.assertEqual(CpuFrequency(sys_root).mhz(1.0), 1500.0)

    def test_meanOfPolicies(self) -> None:
        """One policy per core (a PC): the mean, like C{psutil.cpu_freq()}."""
        root = tree(self)
        write(root, POLICY.format(n=0), "800000\n")
        write(root, POLICY.format(n=1), "2400500\n")
        self.assertEqual(CpuFrequency(root).mhz(1.0), 1600.2)

    def test_perCpuFallback(self) -> None:
        """Old kernels without policy directories: C{cpu*/cpufreq/}."""
        root = tree(self)
        write(root, "devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "600000\n")
        self.assertEqual(CpuFrequency(root).mhz(1.0), 600.0)

    def test_absent(self) -> None:
        """No cpufreq (a VM): C{None}, one info line however many samples."""
        events = capture_logs(self, "pistatsd.machine.readings")
        c = CpuFrequency(tree(self))
        for when in (1.0, 2.0, 1.0 + REDISCOVER_SECONDS, 1.0 + 2 * REDISCOVER_SECONDS):
            self.assertIsNone(c.mhz(when))
        self.assertEqual([e["log_level"] for e in events], [LogLevel.info])

    def test_appearsLater(self) -> None:
        """A cpufreq driver loaded after start is found at the next listing."""
        root = tree(self)
        c = CpuFrequency(root)
        self.assertIsNone(c.mhz(1.0))
        write(root, POLICY.format(n=0), "1000000\n")
        self.assertIsNone(c.mhz(2.0))
        self.assertEqual(c.mhz(1.0 + REDISCOVER_SECONDS), 1000.0)

    def test_unreadable(self) -> None:
        """Garbage or an unreadable file: C{None}, one warning; good again, one info line."""
        events = capture_logs(self, "pistatsd.machine.readings")
        root = tree(self)
        path = write(root, POLICY.format(n=0), "<unsupported>\n")
        c = CpuFrequency(root)
        self.assertIsNone(c.mhz(1.0))
        self.assertIsNone(c.mhz(2.0))
        write(root, POLICY.format(n=0), "700000\n")
        self.assertEqual(c.mhz(3.0), 700.0)
        self.assertEqual([e["log_level"] for e in events], [LogLevel.warn, LogLevel.info])
        self.assertIn(path, str(events[0]["path"]))


class SnapshotTests(SynchronousTestCase):
    def test_inCpuPart(self) -> None:
        """The snapshot's C{cpu} has C{freq_mhz}, first sample included."""
        sys_root, proc_root = raspberry_pi(self)
        c = SystemCollector(psutil=FakePsutil(), sys_root=sys_root, proc_root=proc_root)
        self.assertEqual(c.collect(1.0)["cpu"]["freq_mhz"], 1500.0)
        write(sys_root, POLICY.format(n=0), "600000\n")
        self.assertEqual(c.collect(2.0)["cpu"]["freq_mhz"], 600.0)

    def test_inOnDemandReadings(self) -> None:
        """A reading for C{?interval=} carries the frequency at its end too."""
        sys_root, proc_root = raspberry_pi(self)
        c = SystemCollector(psutil=FakePsutil(), sys_root=sys_root, proc_root=proc_root)
        self.assertEqual(c.read_cpu(5.0).freq_mhz, 1500.0)

    def test_nullWhereAbsent(self) -> None:
        """No cpufreq: C{freq_mhz} is there, and null."""
        c = SystemCollector(psutil=FakePsutil(), sys_root=tree(self), proc_root=tree(self))
        cpu = c.collect(1.0)["cpu"]
        self.assertIn("freq_mhz", cpu)
        self.assertIsNone(cpu["freq_mhz"])
