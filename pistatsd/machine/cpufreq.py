"""The CPU's current clock frequency, for C{cpu.freq_mhz}.

Read from cpufreq in sysfs: C{devices/system/cpu/cpufreq/policy*/scaling_cur_freq}
(kHz), one file per frequency domain.  A Raspberry Pi has one domain for all
its cores (C{policy0}), so the value is exact there; a PC may have one per
core, and then the mean is reported, as C{psutil.cpu_freq()} does.  Kernels
without policy directories are read through C{cpu*/cpufreq/}.

Machines without cpufreq (most VMs, and containers on them) report C{None}:
C{/proc/cpuinfo}'s "cpu MHz" is not used, because there it is the nominal
(TSC) clock, not the current one, and a Pi's C{/proc/cpuinfo} has none.
"""

from __future__ import annotations

from pathlib import Path

from pistatsd.machine.readings import Troubles, read_int

POLICIES = "devices/system/cpu/cpufreq/policy*/scaling_cur_freq"
PER_CPU = "devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq"

REDISCOVER_SECONDS = 60.0
"""How often the cpufreq files are listed again (a driver loaded late, CPU hotplug)."""


class CpuFrequency:
    """Current CPU frequency in MHz from cpufreq sysfs, or C{None} where there is none.

    The file list is found once and kept (globbing sysfs every second would
    cost more than reading the files), and listed again every
    L{REDISCOVER_SECONDS}.
    """

    def __init__(self, sys_root: str | Path = "/sys") -> None:
        """
        @param sys_root: where sysfs is mounted; tests point it at a fixture tree.
        """
        self._root = Path(sys_root)
        self._files: list[Path] | None = None
        self._listed_at = 0.0
        self._troubles = Troubles("cpu.freq_mhz")

    def mhz(self, when: float) -> float | None:
        """The mean current frequency (MHz, one decimal), or C{None}; never raises.

        @param when: the sample's clock time, to pace the listing of files.
        """
        try:
            files = self._discover(when)
            if not files:
                return None
            khz = [value for value in map(read_int, files) if value is not None and value > 0]
        except Exception:
            self._troubles.failure("bug", "cannot read the CPU frequency; it is null")
            return None
        if not khz:
            self._troubles.warn("read", "cannot read {path}; freq_mhz is null", path=files[0])
            return None
        self._troubles.clear("read")
        return round(sum(khz) / len(khz) / 1000.0, 1)

    def _discover(self, when: float) -> list[Path]:
        if self._files is not None and when - self._listed_at < REDISCOVER_SECONDS:
            return self._files
        self._listed_at = when
        self._files = sorted(self._root.glob(POLICIES)) or sorted(self._root.glob(PER_CPU))
        if not self._files:
            self._troubles.note("absent", "no cpufreq in sysfs; freq_mhz is null")
        return self._files
