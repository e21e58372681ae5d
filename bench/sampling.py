"""What sampling costs: CPU of the real sampler at defaults, and how long it stalls the reactor.

    python3 bench/sampling.py                    # 60 s sampling, then 60 s with the probe
    python3 bench/sampling.py --seconds 20 --processes 300   # idle `sleep`s up to 300

Runs the daemon's own sampler, in a real reactor on the monotonic clock, at
the defaults (a snapshot every second, processes scanned every 5 s) with
every collector of the snapshot: the system part of sysinfo, the parts
measured in worker threads (filesystems, processes), and the machine parts
of ``pistatsd.machine.wiring`` when that module exists.  Each snapshot is
also encoded to JSON, as the sampler does.

Two phases of ``--seconds`` each.  Phase one runs the sampler alone: its
CPU is the process's CPU time (``getrusage``: every thread, the workers
included) over the wall time, as a percentage of one core.  Phase two adds a
probe: a ``LoopingCall`` every 5 ms that records how late it runs, so any
stall of the reactor shows as lateness (max and 99th percentile).  On a
machine busy with other work the probe's lateness also counts the time the
kernel gave to other processes, so each call of the sampler's ``sample``
(everything the reactor thread does for a snapshot) is timed as well: that
is the stall sampling itself causes, whatever else runs.

With ``--processes N`` it first starts idle ``sleep`` children until the
machine has about N processes (the target is stated for 300), and ends them
afterwards.  Prints one JSON line.  Exit status 1 when a target is missed
(2 % of one core; no sample holding the reactor over 10 ms).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

PROBE_STEP = 0.005
CPU_TARGET = 2.0
STALL_TARGET_MS = 10.0


def process_count() -> int:
    return sum(1 for entry in os.listdir("/proc") if entry.isdigit())


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except OSError:
        return "unknown"


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def machine_parts(config, reactor):
    """The parts of pistatsd.machine.wiring, when it exists: (services, section callables)."""
    try:
        from pistatsd.machine import wiring
    except ImportError:
        return [], []
    from twisted.application.service import IService

    services, sections = [], []
    for part in wiring.machine_parts(config, reactor):
        if IService.providedBy(part):
            services.append(part)
        section = getattr(part, "section", None)
        if section is None:
            continue
        wants_when = bool(
            [p for p in inspect.signature(section).parameters.values() if p.default is p.empty]
        )
        if wants_when:
            sections.append(lambda section=section: section(reactor.seconds()))
        else:
            sections.append(section)
    return services, sections


def per_operation_costs() -> dict[str, float]:
    """One process scan and one statvfs of every reported mount, timed directly."""
    from pistatsd.machine.mounts import parse_mountinfo, select_filesystems
    from pistatsd.machine.processes import ProcessScanner

    scanner = ProcessScanner()
    scanner.scan()
    started = time.perf_counter()
    for _ in range(10):
        scanner.scan()
    scan = (time.perf_counter() - started) / 10
    with open("/proc/self/mountinfo") as f:
        mounts = [m for m in select_filesystems(parse_mountinfo(f.read())) if m.local]
    started = time.perf_counter()
    for _ in range(100):
        for mount in mounts:
            os.statvfs(mount.mount_point)
    statvfs = (time.perf_counter() - started) / 100 / max(1, len(mounts))
    return {
        "process_scan_ms": round(scan * 1000, 2),
        "per_process_us": round(scan / max(1, process_count()) * 1e6, 1),
        "statvfs_us": round(statvfs * 1e6, 1),
        "local_mounts": len(mounts),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    parser.add_argument(
        "--processes", type=int, default=0, help="start idle sleeps up to this many processes"
    )
    a = parser.parse_args()

    sleepers: list[subprocess.Popen[bytes]] = []
    for _ in range(max(0, a.processes - process_count())):
        sleepers.append(subprocess.Popen(["sleep", "3600"]))
    try:
        return run(a, len(sleepers))
    finally:
        for child in sleepers:
            child.kill()
        for child in sleepers:
            child.wait(10)


def run(a: argparse.Namespace, sleepers: int) -> int:
    from twisted.application.service import MultiService
    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall

    from pistatsd.clock import use_monotonic_clock
    from pistatsd.config import build_config
    from pistatsd.machine.background import threaded_parts
    from pistatsd.sampler import Sampler

    use_monotonic_clock(reactor)
    config = build_config({})
    top = MultiService()
    threaded = threaded_parts(config, reactor)
    threaded.setServiceParent(top)
    services, sections = machine_parts(config, reactor)
    for service in services:
        service.setServiceParent(top)
    sampler = Sampler(clock=reactor, interval=config.sample_interval)
    sampler.sections.extend(threaded.sections)
    sampler.sections.extend(sections)
    sampler.setServiceParent(top)

    lateness: list[float] = []
    probe_state: dict[str, float | None] = {"expected": None}
    sample_times: list[float] = []
    sample = sampler.sample

    def timed_sample() -> None:
        started = time.perf_counter()
        sample()
        sample_times.append(time.perf_counter() - started)

    sampler.sample = timed_sample  # type: ignore[method-assign]

    def probe() -> None:
        now = time.monotonic()
        expected = probe_state["expected"]
        if expected is not None:
            lateness.append(max(0.0, now - expected))
        probe_state["expected"] = now + PROBE_STEP

    result: dict[str, object] = {}
    marks: dict[str, float] = {}

    def start_sampling() -> None:
        top.startService()
        # The first seconds start threads and take the first scans: left out.
        reactor.callLater(2.0, measure_cpu)

    def measure_cpu() -> None:
        marks["cpu"], marks["wall"] = cpu_seconds(), time.monotonic()
        reactor.callLater(a.seconds, start_probe)

    def start_probe() -> None:
        cpu = cpu_seconds() - marks["cpu"]
        wall = time.monotonic() - marks["wall"]
        result["cpu_percent_sampling"] = round(cpu / wall * 100, 3)
        sample_times.clear()
        loop = LoopingCall(probe)
        loop.clock = reactor
        loop.start(PROBE_STEP)
        reactor.callLater(a.seconds, finish)

    def finish() -> None:
        latest = sampler.latest
        result.update(
            stall_max_ms=round(max(lateness, default=0.0) * 1000, 2),
            stall_p99_ms=round(percentile(lateness, 0.99) * 1000, 2),
            sample_max_ms=round(max(sample_times, default=0.0) * 1000, 2),
            sample_p99_ms=round(percentile(sample_times, 0.99) * 1000, 2),
            sample_median_ms=round(percentile(sample_times, 0.5) * 1000, 2),
            probes=len(lateness),
            snapshot_bytes=len(sampler.latest_json),
            processes=(latest.get("processes") or {}).get("total"),
            mounts=len(latest.get("filesystems") or []),
            parts=sorted(latest),
            load_average=[round(x, 2) for x in os.getloadavg()],
        )
        top.stopService().addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start_sampling)
    reactor.run()
    result.update(
        per_operation_costs(),
        seconds=a.seconds,
        sleepers_started=sleepers,
        commit=commit(),
        python=sys.version.split()[0],
        cpus=os.cpu_count(),
    )
    result["ok"] = bool(
        float(result["cpu_percent_sampling"]) <= CPU_TARGET
        and float(result["sample_max_ms"]) <= STALL_TARGET_MS
    )
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
