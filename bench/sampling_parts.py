"""Cost of one call of each whole-machine collector (SPEC section 11), on this machine.

    python bench/sampling_parts.py [--calls 1000] [--sys-root /sys] [--proc-root /proc]

Each collector is built once and called C{--calls} times, as the sampler
calls it (once per sample, with a clock time one second later each time, so
the rate arithmetic and the periodic re-listing run as in the daemon).  The
mean and worst call are printed in microseconds, with the share of one core
that calling it once a second costs.  It reads the real sysfs and procfs
(or the given roots), so the numbers depend on what the machine has: how
many interfaces, disks, hwmon chips.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from pistatsd.machine.cpufreq import CpuFrequency
from pistatsd.machine.diskio import DiskIOCollector
from pistatsd.machine.fans import FanCollector
from pistatsd.machine.net import NetCollector
from pistatsd.machine.power import PiPower
from pistatsd.sysinfo import SystemCollector, parse_throttled


def measure(call: Callable[[float], object], calls: int) -> tuple[float, float]:
    """Mean and worst seconds per call over C{calls} calls (after one warm-up call)."""
    call(0.0)
    worst = 0.0
    start = time.perf_counter()
    for n in range(1, calls + 1):
        before = time.perf_counter()
        call(float(n))
        worst = max(worst, time.perf_counter() - before)
    return (time.perf_counter() - start) / calls, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--sys-root", default="/sys")
    parser.add_argument("--proc-root", default="/proc")
    a = parser.parse_args()

    throttle = parse_throttled("0")
    power = PiPower(a.sys_root)
    system = SystemCollector(sys_root=a.sys_root, proc_root=a.proc_root)
    parts: dict[str, Callable[[float], object]] = {
        "cpu.freq_mhz (CpuFrequency.mhz)": CpuFrequency(a.sys_root).mhz,
        "net (NetCollector.section)": NetCollector(a.sys_root, a.proc_root).section,
        "disk_io (DiskIOCollector.section)": DiskIOCollector(a.sys_root, a.proc_root).section,
        "fans (FanCollector.section)": FanCollector(a.sys_root).section,
        "throttled extras (PiPower.annotate)": lambda when: power.annotate(throttle, when, when),
        "whole SystemCollector.collect (for scale)": system.collect,
    }
    print(f"{a.calls} calls each, sys_root={a.sys_root} proc_root={a.proc_root}")
    print(f"{'collector':45} {'mean us':>9} {'worst us':>9} {'core % at 1 Hz':>15}")
    for name, call in parts.items():
        mean, worst = measure(call, a.calls)
        print(f"{name:45} {mean * 1e6:9.1f} {worst * 1e6:9.1f} {mean * 100:15.4f}")


if __name__ == "__main__":
    main()
