"""The snapshot's C{processes}: counts, and the five busiest and largest processes.

Every C{--process-interval} seconds a worker thread reads C{/proc/<pid>/stat}
of every process; the snapshot gets the latest scan at once.  A process's
CPU percent is its CPU time (user + system) used between two scans over the
time between them, on the monotonic clock: 100 % is one core, as in top, so
a busy multi-threaded process can show more.  A process seen for the first
time has no window yet: its C{cpu_percent} is C{null} and it is left out of
C{top_cpu}, which is C{null} after the very first scan, as C{cpu.percent} is
in the first snapshot.  Processes are told apart by pid I{and} start time,
so a reused pid never inherits another process's CPU time.

Why C{/proc/<pid>/stat} and not psutil: one file gives the name, state, CPU
times, RSS and start time, and reading it directly costs about 20 µs per
process here, against about 80 µs for C{psutil.process_iter} with the same
attributes (which opens several files and builds an object per process):
some 6 ms instead of 24 ms for 300 processes, and five times that on a Pi
Zero 2.  Processes that end during the scan, or whose file cannot be read,
are skipped silently.

C{processes} is C{null} until the first scan, and always when scanning is
off (C{--process-interval 0}).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from attrs import frozen
from twisted.application.internet import TimerService
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from pistatsd.machine.mounts import parse_mountinfo
from pistatsd.machine.threads import Runner

_log = Logger()

TOP = 5
"""How many processes C{top_cpu} and C{top_memory} list."""

Section = dict[str, Any]


@frozen
class ProcessStat:
    """What one C{/proc/<pid>/stat} line says about a process."""

    pid: int
    name: str
    state: str
    cpu_ticks: int
    """User + system time, in clock ticks (C{SC_CLK_TCK} per second)."""
    rss_pages: int
    start_ticks: int
    """When it started, in ticks after boot: with the pid, names the process."""


def parse_stat(pid: int, data: bytes) -> ProcessStat | None:
    """One C{/proc/<pid>/stat} file (see proc(5)); C{None} when it is not one.

    The name (C{comm}) is in parentheses and may itself hold spaces and
    parentheses, so the fields are counted from the I{last} C{)}.
    """
    opening = data.find(b"(")
    closing = data.rfind(b")")
    if opening < 0 or closing < opening:
        return None
    fields = data[closing + 2 :].split()
    try:
        # fields[0] is field 3 of proc(5): state; utime 14, stime 15, starttime 22, rss 24.
        return ProcessStat(
            pid=pid,
            name=data[opening + 1 : closing].decode("utf-8", "replace"),
            state=fields[0].decode("ascii", "replace"),
            cpu_ticks=int(fields[11]) + int(fields[12]),
            rss_pages=max(0, int(fields[21])),
            start_ticks=int(fields[19]),
        )
    except (IndexError, ValueError):
        return None


class ProcessScanner:
    """Reads every process's stat file and turns two scans into CPU percentages.

    Not thread-safe, and need not be: the service runs one scan at a time, in
    a worker thread, and only that scan touches the previous one's numbers.

    @param proc_root: where procfs is (a fixture tree in tests).
    @param monotonic: the clock the CPU windows are measured on.
    """

    def __init__(
        self,
        proc_root: str = "/proc",
        monotonic: Callable[[], float] = time.monotonic,
        ticks_per_second: int | None = None,
        page_size: int | None = None,
        top: int = TOP,
    ) -> None:
        self._proc_root = proc_root
        self._monotonic = monotonic
        self._ticks = ticks_per_second or os.sysconf("SC_CLK_TCK")
        self._page_size = page_size or os.sysconf("SC_PAGE_SIZE")
        self._top = top
        self._previous: Mapping[tuple[int, int], int] = {}
        self._previous_when: float | None = None

    def read(self) -> Iterator[ProcessStat]:
        """Every process that can be read now; vanished or unreadable ones are skipped.

        @raise OSError: when the process directory itself cannot be listed.
        """
        for entry in os.listdir(self._proc_root):
            if not entry.isdigit():
                continue
            try:
                with open(os.path.join(self._proc_root, entry, "stat"), "rb") as f:
                    data = f.read()
            except OSError:  # ended meanwhile (ENOENT, ESRCH) or hidden (EACCES)
                continue
            stat = parse_stat(int(entry), data)
            if stat is not None:
                yield stat

    def scan(self) -> Section:
        """One scan: the snapshot's C{processes} section (runs in a worker thread)."""
        when = self._monotonic()
        stats = list(self.read())
        previous, window = self._previous, None
        if self._previous_when is not None and when > self._previous_when:
            window = when - self._previous_when
        self._previous = {(s.pid, s.start_ticks): s.cpu_ticks for s in stats}
        self._previous_when = when

        entries: list[tuple[ProcessStat, float | None]] = []
        for s in stats:
            percent = None
            before = previous.get((s.pid, s.start_ticks))
            if window is not None and before is not None:
                used = max(0, s.cpu_ticks - before) / self._ticks
                percent = round(used / window * 100.0, 1)
            entries.append((s, percent))
        by_cpu = sorted(
            (e for e in entries if e[1] is not None), key=lambda e: (-(e[1] or 0.0), e[0].pid)
        )
        by_memory = sorted(entries, key=lambda e: (-e[0].rss_pages, e[0].pid))
        return {
            "total": len(stats),
            "running": sum(1 for s in stats if s.state == "R"),
            "zombie": sum(1 for s in stats if s.state == "Z"),
            "top_cpu": None if window is None else [self._entry(*e) for e in by_cpu[: self._top]],
            "top_memory": [self._entry(*e) for e in by_memory[: self._top]],
        }

    def _entry(self, stat: ProcessStat, percent: float | None) -> Section:
        return {
            "pid": stat.pid,
            "name": stat.name,
            "cpu_percent": percent,
            "rss": stat.rss_pages * self._page_size,
        }


def hidden_processes(mountinfo: str) -> str | None:
    """The C{hidepid=} option of C{/proc} when it hides other users' processes, else C{None}.

    systemd's C{ProtectProc=invisible} (and a C{hidepid=2} in fstab) mounts
    C{/proc} so that a process sees only its own user's processes: the scan
    then quietly counts pistatsd alone, which deserves one line in the log.
    """
    for mount in parse_mountinfo(mountinfo):
        if mount.fstype == "proc" and mount.mount_point == "/proc":
            hidden = None
            for option in mount.super_options.split(","):
                key, _, value = option.partition("=")
                if key == "hidepid" and value not in ("0", "off"):
                    hidden = option
            return hidden
    return None


class ProcessesService(TimerService):
    """Scans the processes every C{interval} seconds in a worker thread; see the module.

    At most one scan runs at a time: a tick that finds the previous scan
    still running is skipped (and the episode logged once), so a slow
    machine cannot queue scans up.
    """

    def __init__(
        self,
        clock: IReactorTime,
        pool: Runner,
        interval: float,
        scanner: ProcessScanner | None = None,
        mountinfo: str = "/proc/self/mountinfo",
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval!r}")
        super().__init__(interval, self._tick)
        self.clock = clock
        self._pool = pool
        self._scanner = scanner if scanner is not None else ProcessScanner(monotonic=clock.seconds)
        self._mountinfo = mountinfo
        self._latest: Section | None = None
        self._scanning = False
        self._skipped = 0
        self._failures = 0

    def startService(self) -> None:
        """Warn once if C{/proc} hides processes, then scan now and every C{interval}."""
        self._warn_if_hidden()
        super().startService()

    def section(self, when: float | None = None) -> dict[str, Section | None]:
        """The latest scan (never waits): C{null} before the first."""
        return {"processes": self._latest}

    def _tick(self) -> None:
        if self._scanning:
            if self._skipped == 0:
                _log.warn(
                    "The process scan takes longer than --process-interval {interval:g} s; "
                    "skipping scans until it keeps up",
                    interval=self.step,
                )
            self._skipped += 1
            return
        if self._skipped:
            _log.info("The process scan keeps up again after {n} skipped", n=self._skipped)
            self._skipped = 0
        self._scanning = True
        self._pool.run(self._scanner.scan).addCallbacks(self._scanned, self._scan_failed)

    def _scanned(self, section: Section) -> None:
        self._scanning = False
        self._latest = section
        if self._failures:
            _log.info("Scanning processes works again after {n} failures", n=self._failures)
            self._failures = 0

    def _scan_failed(self, reason: Failure) -> None:
        self._scanning = False
        self._latest = None
        if not self.running:
            return  # the pool stopped under a scan at shutdown
        if self._failures == 0:
            _log.failure("Scanning processes failed; processes is null until it works", reason)
        self._failures += 1

    def _warn_if_hidden(self) -> None:
        try:
            with open(self._mountinfo, encoding="utf-8", errors="surrogateescape") as f:
                hidden = hidden_processes(f.read())
        except OSError:
            return
        if hidden is not None:
            _log.warn(
                "/proc is mounted with {option}: other users' processes are hidden, so "
                "processes counts only those pistatsd may see (systemd: ProtectProc=default)",
                option=hidden,
            )


def processes_off(when: float | None = None) -> dict[str, None]:
    """The C{processes} section when scanning is off (C{--process-interval 0})."""
    return {"processes": None}
