"""C{processes}: reading C{/proc/<pid>/stat}, CPU percent between scans, the scan service.

The scanner reads fixture trees laid out as procfs is (C{<root>/<pid>/stat});
the service runs on a L{Clock} with a pool that holds each scan until the test
runs it.  One test scans the real C{/proc} twice around a busy child process.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.config import ConfigError, build_config
from pistatsd.machine.background import threaded_parts
from pistatsd.machine.processes import (
    ProcessesService,
    ProcessScanner,
    hidden_processes,
    parse_stat,
    processes_off,
)

TICKS = 100
PAGE = 4096


def stat_line(
    pid: int,
    name: str,
    state: str = "S",
    utime: int = 0,
    stime: int = 0,
    start: int = 1000,
    rss: int = 100,
) -> str:
    """A C{/proc/<pid>/stat} line with every field of a 6.x kernel (52), as proc(5) numbers them."""
    fields = ["0"] * 52
    fields[0], fields[1], fields[2] = str(pid), f"({name})", state
    fields[3] = "1"  # ppid
    fields[13], fields[14] = str(utime), str(stime)
    fields[21] = str(start)
    fields[22] = "123456789"  # vsize
    fields[23] = str(rss)
    return " ".join(fields) + "\n"


class Procfs:
    """A fixture tree shaped like C{/proc}."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "self").mkdir(exist_ok=True)  # non-numeric entries are ignored
        (root / "stat").write_text("cpu  1 2 3 4\n")

    def put(self, pid: int, name: str, state: str = "S", **fields: Any) -> None:
        (self.root / str(pid)).mkdir(exist_ok=True)
        (self.root / str(pid) / "stat").write_text(stat_line(pid, name, state, **fields))

    def remove(self, pid: int) -> None:
        (self.root / str(pid) / "stat").unlink()
        (self.root / str(pid)).rmdir()


class ParseTests(SynchronousTestCase):
    def test_fields(self) -> None:
        stat = parse_stat(
            42, stat_line(42, "nginx", "R", utime=7, stime=3, start=99, rss=25).encode()
        )
        assert stat is not None
        self.assertEqual(
            (stat.pid, stat.name, stat.state, stat.cpu_ticks, stat.start_ticks, stat.rss_pages),
            (42, "nginx", "R", 10, 99, 25),
        )

    def test_names_with_spaces_and_parentheses(self) -> None:
        for name in ("tmux: server", "(sd-pam)", "a) S 1 2 (b", "kworker/0:1-events"):
            stat = parse_stat(7, stat_line(7, name, "S", utime=5).encode())
            assert stat is not None, name
            self.assertEqual((stat.name, stat.state, stat.cpu_ticks), (name, "S", 5))

    def test_not_a_stat_line(self) -> None:
        for data in (b"", b"garbage", b"1 (x) S 1 2", b"1 (x) S " + b"y " * 60):
            self.assertIsNone(parse_stat(1, data), data)


class ScannerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.now = 100.0
        self.proc = Procfs(Path(self.mktemp()))
        self.scanner = ProcessScanner(
            str(self.proc.root), lambda: self.now, ticks_per_second=TICKS, page_size=PAGE
        )

    def test_first_scan_counts_and_memory_but_no_cpu_yet(self) -> None:
        self.proc.put(1, "systemd", rss=3000)
        self.proc.put(2, "kthreadd", rss=0)
        self.proc.put(300, "python3", "R", rss=9000)
        self.proc.put(301, "defunct", "Z", rss=0)
        self.proc.put(302, "sshd", "D", rss=2000)
        section = self.scanner.scan()
        self.assertEqual((section["total"], section["running"], section["zombie"]), (5, 1, 1))
        self.assertIsNone(section["top_cpu"])
        self.assertEqual(
            section["top_memory"][:3],
            [
                {"pid": 300, "name": "python3", "cpu_percent": None, "rss": 9000 * PAGE},
                {"pid": 1, "name": "systemd", "cpu_percent": None, "rss": 3000 * PAGE},
                {"pid": 302, "name": "sshd", "cpu_percent": None, "rss": 2000 * PAGE},
            ],
        )

    def test_cpu_percent_from_the_time_used_between_scans(self) -> None:
        self.proc.put(10, "idle", utime=50, stime=50)
        self.proc.put(11, "busy", utime=1000, stime=0)
        self.proc.put(12, "threads", utime=0, stime=0)
        self.scanner.scan()
        self.now += 5.0
        self.proc.put(10, "idle", utime=50, stime=51)  # 1 tick in 5 s: 0.2 %
        self.proc.put(11, "busy", utime=1400, stime=100)  # 5 s of CPU in 5 s: 100 %
        self.proc.put(12, "threads", utime=700, stime=300)  # two cores' worth: 200 %
        section = self.scanner.scan()
        self.assertEqual(
            [(e["name"], e["cpu_percent"]) for e in section["top_cpu"]],
            [("threads", 200.0), ("busy", 100.0), ("idle", 0.2)],
        )

    def test_new_reused_and_vanished_processes(self) -> None:
        self.proc.put(20, "old", utime=10, start=500)
        self.proc.put(21, "goes-away", utime=10)
        self.scanner.scan()
        self.now += 5.0
        self.proc.put(20, "new", utime=5, start=900)  # pid 20 reused by another process
        self.proc.remove(21)
        self.proc.put(22, "newcomer", utime=400)
        (self.proc.root / "23").mkdir()  # a process that ended between listdir and open
        section = self.scanner.scan()
        self.assertEqual(section["total"], 2)
        self.assertEqual(section["top_cpu"], [])  # nobody has a window yet
        self.assertEqual({e["name"]: e["cpu_percent"] for e in section["top_memory"]},
                         {"new": None, "newcomer": None})  # fmt: skip
        self.now += 5.0
        self.proc.put(20, "new", utime=55, start=900)
        section = self.scanner.scan()
        self.assertEqual(section["top_cpu"][0]["cpu_percent"], 10.0)

    def test_counters_that_go_backwards_count_as_zero(self) -> None:
        self.proc.put(30, "odd", utime=100)
        self.scanner.scan()
        self.now += 5.0
        self.proc.put(30, "odd", utime=90)
        self.assertEqual(self.scanner.scan()["top_cpu"][0]["cpu_percent"], 0.0)

    def test_five_of_each_ties_by_pid(self) -> None:
        for pid in range(40, 52):
            self.proc.put(pid, f"p{pid}", rss=pid % 3, utime=0)
        self.scanner.scan()
        self.now += 1.0
        for pid in range(40, 52):
            self.proc.put(pid, f"p{pid}", rss=pid % 3, utime=pid % 2)
        section = self.scanner.scan()
        self.assertEqual([e["pid"] for e in section["top_cpu"]], [41, 43, 45, 47, 49])
        self.assertEqual([e["pid"] for e in section["top_memory"]], [41, 44, 47, 50, 40])

    def test_an_unlistable_proc_raises(self) -> None:
        scanner = ProcessScanner(str(self.proc.root / "nowhere"))
        self.assertRaises(OSError, scanner.scan)


class HeldPool:
    """Stands in for the worker pool: each call waits until the test runs it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[[], Any], Deferred[Any]]] = []

    def run(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.calls.append((functools.partial(f, *args, **kwargs), d))
        return d

    def finish(self) -> None:
        f, d = self.calls.pop(0)
        try:
            result = f()
        except BaseException:
            d.errback()
        else:
            d.callback(result)


class ServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.pool = HeldPool()
        self.proc = Procfs(Path(self.mktemp()))
        self.proc.put(1, "init", utime=0)
        self.mountinfo = Path(self.mktemp())
        self.mountinfo.write_text("22 1 0:21 / /proc rw,relatime - proc proc rw\n")
        self.scanner = ProcessScanner(
            str(self.proc.root), self.clock.seconds, ticks_per_second=TICKS, page_size=PAGE
        )

    def service(self, interval: float = 5.0) -> ProcessesService:
        service = ProcessesService(
            self.clock, self.pool, interval, self.scanner, mountinfo=str(self.mountinfo)
        )
        service.startService()
        self.addCleanup(service.stopService)
        return service

    def test_scans_now_then_every_interval(self) -> None:
        service = self.service()
        self.assertEqual(service.section(), {"processes": None})
        self.assertEqual(len(self.pool.calls), 1)
        self.pool.finish()
        self.assertEqual(service.section()["processes"]["total"], 1)
        self.proc.put(1, "init", utime=250)
        self.clock.advance(4.9)
        self.assertEqual(self.pool.calls, [])
        self.clock.advance(0.1)
        self.pool.finish()
        top = service.section()["processes"]["top_cpu"]
        self.assertEqual(top, [{"pid": 1, "name": "init", "cpu_percent": 50.0, "rss": 100 * PAGE}])

    def test_a_slow_scan_is_not_queued_behind(self) -> None:
        service = self.service(interval=1)
        with capturedLogs() as events:
            self.clock.pump([1] * 5)
            self.assertEqual(len(self.pool.calls), 1)
        self.assertEqual(len([e for e in events if "takes longer" in e["log_format"]]), 1)
        self.pool.finish()
        with capturedLogs() as events:
            self.clock.advance(1)
        self.assertEqual(len([e for e in events if "keeps up again" in e["log_format"]]), 1)
        self.assertEqual(len(self.pool.calls), 1)
        self.assertIsNotNone(service.section()["processes"])

    def test_failures_give_null_logged_once_and_the_loop_goes_on(self) -> None:
        service = self.service(interval=1)
        self.pool.finish()
        self.assertIsNotNone(service.section()["processes"])
        self.proc.put(1, "init")
        os.rename(self.proc.root, str(self.proc.root) + ".away")
        with capturedLogs() as events:
            for _ in range(3):
                self.clock.advance(1)
                self.pool.finish()
        self.assertIsNone(service.section()["processes"])
        self.assertEqual(len([e for e in events if e.get("log_failure")]), 1)
        self.assertEqual(len(self.flushLoggedErrors(FileNotFoundError)), 1)
        os.rename(str(self.proc.root) + ".away", self.proc.root)
        with capturedLogs() as events:
            self.clock.advance(1)
            self.pool.finish()
        self.assertEqual(service.section()["processes"]["total"], 1)
        self.assertEqual(len([e for e in events if "works again" in e["log_format"]]), 1)

    def test_stops_scanning_when_stopped(self) -> None:
        service = self.service(interval=1)
        self.pool.finish()
        service.stopService()
        self.clock.advance(10)
        self.assertEqual(self.pool.calls, [])

    def test_warns_once_when_proc_hides_processes(self) -> None:
        self.mountinfo.write_text(
            "22 1 0:21 / /proc rw,nosuid - proc proc rw,hidepid=invisible,subset=pid\n"
        )
        with capturedLogs() as events:
            self.service()
        warnings = [e for e in events if "hidden" in e["log_format"]]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["option"], "hidepid=invisible")

    def test_hidepid_options(self) -> None:
        def table(options: str) -> str:
            return f"22 1 0:21 / /proc rw - proc proc {options}\n"

        self.assertIsNone(hidden_processes(table("rw")))
        self.assertIsNone(hidden_processes(table("rw,hidepid=0")))
        self.assertIsNone(hidden_processes(table("rw,hidepid=off")))
        self.assertEqual(hidden_processes(table("rw,hidepid=2")), "hidepid=2")
        self.assertEqual(hidden_processes(table("rw,hidepid=noaccess")), "hidepid=noaccess")
        # A procfs elsewhere (a container's) is not ours.
        self.assertIsNone(hidden_processes("22 1 0:9 / /srv/c/proc rw - proc proc hidepid=2\n"))


class OptionTests(SynchronousTestCase):
    def test_default_off_and_bounds(self) -> None:
        self.assertEqual(build_config({}).process_interval, 5.0)
        self.assertEqual(build_config({"process-interval": "0"}).process_interval, 0.0)
        self.assertEqual(build_config({"process-interval": "2.5"}).process_interval, 2.5)
        for bad, why in (
            ("0.5", "0 turns scanning off; otherwise at least 1"),
            ("-1", "below the minimum 0"),
            ("3601", "above the maximum 3600"),
            ("soon", "invalid value"),
        ):
            e = self.assertRaises(ConfigError, build_config, {"process-interval": bad})
            self.assertIn("--process-interval", str(e))
            self.assertIn(why, str(e))

    def test_from_the_toml_file(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("process-interval = 10\n")
        self.assertEqual(build_config({"config": path}).process_interval, 10.0)

    def test_off_gives_null(self) -> None:
        self.assertEqual(processes_off(), {"processes": None})
        parts = threaded_parts(build_config({"process-interval": "0"}), Clock())
        self.assertIn(processes_off, parts.sections)
        self.assertEqual([s.name for s in parts], [None, None])  # the pool, filesystems
        on = threaded_parts(build_config({}), Clock())
        self.assertEqual(len(list(on)), 3)
        self.assertNotIn(processes_off, on.sections)


# -- the real /proc ------------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_real_proc_sees_a_busy_process() -> Any:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        scanner = ProcessScanner(top=1000)
        first = scanner.scan()
        assert first["total"] > 1
        mine = [e for e in first["top_memory"] if e["pid"] == os.getpid()]
        assert mine and mine[0]["rss"] > 1_000_000
        yield deferLater(reactor, 1.0, lambda: None)
        second = scanner.scan()
        by_pid = {e["pid"]: e for e in second["top_cpu"]}
        assert busy.pid in by_pid
        # A spinning process uses about a core; allow for a machine shared with others.
        assert 30.0 <= by_pid[busy.pid]["cpu_percent"] <= 110.0, by_pid[busy.pid]
        assert second["running"] >= 1
    finally:
        busy.kill()
        busy.wait(10)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="no procfs")
def test_direct_read_is_what_psutil_sees() -> None:
    import psutil

    me = ProcessScanner(top=100_000).scan()
    entry = next(e for e in me["top_memory"] if e["pid"] == os.getpid())
    process = psutil.Process()
    assert entry["name"] == process.name()[:15]
    assert abs(entry["rss"] - process.memory_info().rss) < 50_000_000
