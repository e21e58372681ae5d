"""C{filesystems}: which mounts, their numbers, and never waiting for a hung one.

The mount table is a fixture modelled on a Raspberry Pi running Raspberry Pi
OS (root on the SD card, the boot partition, a USB disk, an NFS share, snap
loops, Docker layers, systemd's C{tmpfs}).  The service runs on a
L{Clock} with a stand-in pool that holds each call until the test lets it
run (or runs it in a real thread, for the races between a call and its
timeout); the worker pool and a really blocked C{statvfs} are tested on the
real reactor.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import shutil
import subprocess
import sys
import threading
import time
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

from pistatsd.machine.filesystems import FilesystemsService, usage
from pistatsd.machine.mounts import (
    Mount,
    device_name,
    parse_mountinfo,
    select_filesystems,
    unescape,
)
from pistatsd.machine.statvfs_helper import HelperStatvfs
from pistatsd.machine.threads import PoolStopped, WorkerPool
from tests.daemon import PROJECT, Daemon

PI_MOUNTINFO = "\n".join(
    [
        "22 1 179:2 / / rw,noatime - ext4 /dev/root rw",
        "23 22 0:21 / /proc rw,relatime - proc proc rw",
        "24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw",
        "25 22 0:5 / /dev rw,relatime - devtmpfs udev rw,size=1867976k,mode=755",
        "26 25 0:23 / /dev/shm rw,nosuid,nodev - tmpfs tmpfs rw",
        "27 25 0:24 / /dev/pts rw,nosuid - devpts devpts rw,gid=5,mode=620",
        "28 22 0:25 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,size=788236k,mode=755",
        "29 28 0:26 / /run/lock rw,nosuid,nodev,noexec - tmpfs tmpfs rw,size=5120k",
        "30 24 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate",
        "31 22 179:1 / /boot/firmware rw,relatime - vfat /dev/mmcblk0p1 rw,fmask=0022",
        "32 28 0:40 / /run/user/1000 rw,nosuid,nodev - tmpfs tmpfs rw,size=394116k,uid=1000",
        "33 22 8:1 / /media/pi/USB\\040DISK rw,nosuid,nodev - exfat /dev/sda1 rw,uid=1000",
        "34 22 8:1 / /mnt/usb-again rw,relatime - exfat /dev/sda1 rw",
        "35 22 179:2 /home/pi/shared /srv/shared rw,noatime - ext4 /dev/root rw",
        "36 22 0:41 / /mnt/nas rw,relatime shared:40 - nfs4 nas.local:/export rw,vers=4.2",
        "37 22 7:0 / /snap/core22/1380 ro,nodev,relatime - squashfs /dev/loop0 ro",
        "38 22 0:42 / /var/lib/docker/overlay2/ab/merged rw - overlay overlay rw,lowerdir=x",
        "39 22 0:43 / /tmp rw,nosuid,nodev - tmpfs tmpfs rw",
        "40 22 0:44 / /var/log rw,nosuid,nodev - tmpfs log2ram rw,size=131072k",
        "41 22 179:3 / /mnt/archive ro,relatime - ext4 /dev/mmcblk0p3 rw",
        "46 22 179:4 / /mnt/backup ro,relatime - ext4 /dev/mmcblk0p4 ro",
        "42 22 0:45 / /proc/sys/fs/binfmt_misc rw - binfmt_misc binfmt_misc rw",
        "43 22 0:46 / /mnt/auto rw - autofs systemd-1 rw,fd=36",
        "44 22 0:47 / /mnt/sshfs rw,nosuid - fuse.sshfs pi@host:/ rw,user_id=0",
        "this line is not a mount",
    ]
)

EXPECTED_MOUNTS = [
    "/",
    "/run",
    "/boot/firmware",
    "/media/pi/USB DISK",
    "/mnt/nas",
    "/tmp",
    "/var/log",
    "/mnt/archive",
    "/mnt/backup",
    "/mnt/sshfs",
]

LOCAL_MOUNTS = ["/", "/run", "/boot/firmware", "/media/pi/USB DISK", "/tmp", "/var/log",
                "/mnt/archive", "/mnt/backup"]  # fmt: skip


def statvfs_result(
    blocks: int = 1000,
    bfree: int = 400,
    bavail: int = 350,
    files: int = 100,
    ffree: int = 75,
    frsize: int = 4096,
    flag: int = 0,
) -> os.statvfs_result:
    """An C{os.statvfs} answer: (bsize, frsize, blocks, bfree, bavail, files, ffree,
    favail, flag, namemax)."""
    return os.statvfs_result(
        (frsize, frsize, blocks, bfree, bavail, files, ffree, ffree, flag, 255)
    )


class HeldPool:
    """Stands in for the worker pool: each call waits until the test runs it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[[], Any], Deferred[Any]]] = []

    def run(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.calls.append((functools.partial(f, *args, **kwargs), d))
        return d

    def finish(self, index: int = 0) -> None:
        """Run one held call now, in this thread, and deliver its result."""
        f, d = self.calls.pop(index)
        try:
            result = f()
        except BaseException:
            d.errback()
        else:
            d.callback(result)

    def finish_all(self) -> None:
        while self.calls:
            self.finish()

    def start_in_thread(self, index: int = 0) -> Callable[[], None]:
        """Run a held call in a real thread; the returned function joins it and
        delivers the result here (as the reactor would)."""
        f, d = self.calls.pop(index)
        outcome: list[Any] = []
        thread = threading.Thread(target=lambda: outcome.append(f()), daemon=True)
        thread.start()

        def deliver() -> None:
            thread.join(10)
            assert not thread.is_alive(), "the call did not return"
            d.callback(outcome[0])

        return deliver


class Disks:
    """A C{statvfs} stand-in: answers per path, records every call, can hold one."""

    def __init__(self) -> None:
        self.answers: dict[str, os.statvfs_result | OSError] = {}
        self.asked: list[str] = []
        self.held: dict[str, threading.Event] = {}
        self.entered: dict[str, threading.Event] = {}

    def hold(self, path: str) -> threading.Event:
        """Make C{statvfs(path)} block until the returned event is set."""
        self.held[path] = threading.Event()
        self.entered[path] = threading.Event()
        return self.held[path]

    def __call__(self, path: str) -> os.statvfs_result:
        self.asked.append(path)
        if path in self.held:
            self.entered[path].set()
            assert self.held[path].wait(10), "held too long"
        answer = self.answers.get(path, statvfs_result())
        if isinstance(answer, OSError):
            raise answer
        return answer


def held_mounts(pool: HeldPool) -> list[list[str]]:
    """The mount points of each call the pool holds, in order."""
    return [[m.mount_point for m in f.func.__self__.mounts] for f, _ in pool.calls]


class MountTableTests(SynchronousTestCase):
    def test_real_filesystems_once(self) -> None:
        chosen = select_filesystems(parse_mountinfo(PI_MOUNTINFO))
        self.assertEqual([m.mount_point for m in chosen], EXPECTED_MOUNTS)
        self.assertEqual([m.mount_point for m in chosen if m.local], LOCAL_MOUNTS)

    def test_bind_mount_and_second_mount_of_a_device_are_left_out(self) -> None:
        chosen = {m.mount_point: m for m in select_filesystems(parse_mountinfo(PI_MOUNTINFO))}
        self.assertNotIn("/srv/shared", chosen)  # bind mount of a directory of /
        self.assertNotIn("/mnt/usb-again", chosen)  # /dev/sda1 again
        self.assertEqual(chosen["/media/pi/USB DISK"].source, "/dev/sda1")

    def test_the_root_mount_of_a_filesystem_wins_over_an_earlier_bind(self) -> None:
        table = "\n".join(
            [
                "22 1 8:1 /data /srv rw - ext4 /dev/sda1 rw",
                "23 1 8:1 / /mnt/disk rw - ext4 /dev/sda1 rw",
            ]
        )
        self.assertEqual(
            [m.mount_point for m in select_filesystems(parse_mountinfo(table))], ["/mnt/disk"]
        )

    def test_a_mount_point_mounted_over_is_its_top_mount(self) -> None:
        # systemd's ProtectHome= hides a /home partition behind an empty mount.
        table = "\n".join(
            [
                "22 1 179:2 / / rw - ext4 /dev/mmcblk0p2 rw",
                "23 22 8:2 / /home rw - ext4 /dev/sda2 rw",
                "24 23 0:50 / /home ro - tmpfs tmpfs ro,mode=000",
            ]
        )
        chosen = select_filesystems(parse_mountinfo(table))
        self.assertEqual([(m.mount_point, m.source) for m in chosen],
                         [("/", "/dev/mmcblk0p2"), ("/home", "tmpfs")])  # fmt: skip

    def test_escapes_and_read_only(self) -> None:
        self.assertEqual(unescape(r"/media/a\040b\011c\012d\134e"), "/media/a b\tc\nd\\e")
        self.assertEqual(unescape("/media/Müll"), "/media/Müll")
        mounts = {m.mount_point: m for m in parse_mountinfo(PI_MOUNTINFO)}
        self.assertTrue(mounts["/snap/core22/1380"].read_only)
        self.assertFalse(mounts["/"].read_only)
        sb_ro = parse_mountinfo("50 1 8:3 / /mnt/x rw - ext4 /dev/sda3 ro,errors=remount-ro")
        self.assertTrue(sb_ro[0].read_only)  # the filesystem went read-only (errors)
        # A read-only view of a writable disk (ProtectSystem=strict, a ro bind) is not.
        self.assertFalse(mounts["/mnt/archive"].read_only)

    def test_dev_root_named_from_sysfs(self) -> None:
        sys_root = Path(self.mktemp())
        (sys_root / "dev" / "block").mkdir(parents=True)
        # As on a Pi 4: /sys/dev/block/179:2 -> the partition's device directory.
        os.symlink(
            "../../devices/platform/emmc2bus/fe340000.mmc/mmc_host/mmc0/mmc0:aaaa/block/"
            "mmcblk0/mmcblk0p2",
            sys_root / "dev" / "block" / "179:2",
        )
        root = parse_mountinfo(PI_MOUNTINFO)[0]
        self.assertEqual(device_name(root, str(sys_root)), "/dev/mmcblk0p2")
        self.assertEqual(device_name(root, str(sys_root / "nowhere")), "/dev/root")
        nas = next(m for m in parse_mountinfo(PI_MOUNTINFO) if m.mount_point == "/mnt/nas")
        self.assertEqual(device_name(nas, str(sys_root)), "nas.local:/export")

    def test_usage_counts_like_df(self) -> None:
        mount = Mount(1, "8:1", "/", "/mnt/x", "ext4", "/dev/sda1", read_only=False)
        entry = usage(mount, "/dev/sda1", statvfs_result())
        self.assertEqual(
            entry,
            {
                "mount": "/mnt/x",
                "device": "/dev/sda1",
                "fstype": "ext4",
                "total": 1000 * 4096,
                "used": 600 * 4096,
                "free": 350 * 4096,
                "percent": 63.2,  # 600 / (600 + 350): reserved blocks do not count
                "inodes_percent": 25.0,
                "read_only": False,
            },
        )
        vfat = usage(mount, "/dev/sda1", statvfs_result(files=0, ffree=0, flag=os.ST_RDONLY))
        self.assertIsNone(vfat["inodes_percent"])
        self.assertFalse(vfat["read_only"])  # f_flag has this mount's view in it
        empty = usage(mount, "/dev/sda1", statvfs_result(blocks=0, bfree=0, bavail=0))
        self.assertEqual(empty["percent"], 0.0)


class ServiceCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.pool = HeldPool()
        self.disks = Disks()
        self.table = Path(self.mktemp())
        self.table.write_text(PI_MOUNTINFO)

    def service(self, **kwargs: Any) -> FilesystemsService:
        service = FilesystemsService(
            self.clock,
            self.pool,
            mountinfo=str(self.table),
            statvfs=self.disks,
            fuse_statvfs=self.disks,
            sys_root=self.mktemp(),
            **kwargs,
        )
        service.startService()
        self.addCleanup(service.stopService)
        return service

    def entries(self, service: FilesystemsService) -> dict[str, dict[str, Any]]:
        section = service.latest()  # what the next sample shows, without measuring again
        assert section is not None
        return {e["mount"]: e for e in section}


class ServiceTests(ServiceCase):
    def test_null_until_the_first_answers(self) -> None:
        service = self.service()
        self.assertEqual(service.section(), {"filesystems": None})
        self.pool.finish_all()
        entries = self.entries(service)
        self.assertEqual(list(entries), EXPECTED_MOUNTS)
        self.assertEqual(entries["/"]["device"], "/dev/root")
        self.assertEqual(entries["/"]["total"], 1000 * 4096)
        self.assertNotIn("error", entries["/"])
        self.assertTrue(entries["/mnt/backup"]["read_only"])
        self.assertFalse(entries["/mnt/archive"]["read_only"])

    def test_local_filesystems_share_one_call_the_others_one_each(self) -> None:
        self.service()
        self.assertEqual(held_mounts(self.pool), [["/mnt/nas"], ["/mnt/sshfs"], LOCAL_MOUNTS])
        self.pool.finish(2)
        self.assertEqual(self.disks.asked, LOCAL_MOUNTS)
        self.pool.finish_all()
        self.assertEqual(sorted(self.disks.asked), sorted(EXPECTED_MOUNTS))

    def test_each_sample_measures_again_but_never_twice_at_once(self) -> None:
        service = self.service()
        service.section()  # the calls from the start are still held: nothing new
        self.assertEqual(len(self.pool.calls), 3)
        self.pool.finish_all()
        service.section()
        self.assertEqual(len(self.pool.calls), 3)

    def test_the_paths_are_below_the_path_root(self) -> None:
        asked: list[str] = []
        self.disks = lambda path: asked.append(path) or statvfs_result()  # type: ignore[assignment]
        self.service(path_root="/host")
        self.pool.finish_all()
        self.assertIn("/host/media/pi/USB DISK", asked)
        self.assertIn("/host/", asked)

    def test_errors_are_reported_per_mount_and_logged_once(self) -> None:
        self.disks.answers["/mnt/sshfs"] = OSError(107, "Transport endpoint is not connected")
        with capturedLogs() as events:
            service = self.service()
            for _ in range(3):
                self.pool.finish_all()
                service.section()
        entry = self.entries(service)["/mnt/sshfs"]
        self.assertEqual(entry["error"], "Transport endpoint is not connected")
        self.assertIsNone(entry["total"])
        self.assertIsNone(entry["percent"])
        self.assertEqual(entry["fstype"], "fuse.sshfs")
        self.assertEqual(self.entries(service)["/"]["percent"], 63.2)
        warnings = [e for e in events if "Cannot measure" in e["log_format"]]
        self.assertEqual(len(warnings), 1)
        del self.disks.answers["/mnt/sshfs"]
        with capturedLogs() as events:
            self.pool.finish_all()
            service.section()
        self.assertNotIn("error", self.entries(service)["/mnt/sshfs"])
        self.assertEqual(len([e for e in events if "measured again" in e["log_format"]]), 1)

    def test_unreadable_mount_table_keeps_the_last_and_logs_once(self) -> None:
        service = self.service()
        self.pool.finish_all()
        self.table.unlink()
        with capturedLogs() as events:
            for _ in range(3):
                service.section()
                self.pool.finish_all()
        self.assertEqual(list(self.entries(service)), EXPECTED_MOUNTS)
        self.assertEqual(len([e for e in events if "Cannot read" in e["log_format"]]), 1)
        self.table.write_text(PI_MOUNTINFO)
        with capturedLogs() as events:
            service.section()
        self.assertEqual(len([e for e in events if "readable again" in e["log_format"]]), 1)

    def test_unmounted_filesystems_go_away(self) -> None:
        service = self.service()
        self.pool.finish_all()
        self.table.write_text("\n".join(line for line in PI_MOUNTINFO.splitlines()
                                        if "/mnt/nas" not in line))  # fmt: skip
        service.section()
        self.pool.finish_all()
        self.assertNotIn("/mnt/nas", self.entries(service))

    def test_nothing_is_started_when_stopped(self) -> None:
        service = self.service()
        self.pool.finish_all()
        service.stopService()
        service.section()
        self.assertEqual(self.pool.calls, [])


class TimeoutTests(ServiceCase):
    def test_a_hung_network_mount_times_out_and_is_not_retried_until_it_returns(self) -> None:
        release = self.disks.hold("/mnt/nas")
        with capturedLogs() as events:
            service = self.service(timeout=2.0)
            nas = held_mounts(self.pool).index(["/mnt/nas"])
            deliver = self.pool.start_in_thread(nas)  # really blocked in a thread
            self.pool.finish_all()
            assert self.disks.entered["/mnt/nas"].wait(10)
            self.assertNotIn("/mnt/nas", self.entries(service))  # not answered, not late yet
            self.clock.advance(1.9)
            self.assertNotIn("/mnt/nas", self.entries(service))
            self.clock.advance(0.1)
            entry = self.entries(service)["/mnt/nas"]
            self.assertEqual(entry["error"], "timeout")
            for field in ("total", "used", "free", "percent", "inodes_percent"):
                self.assertIsNone(entry[field], field)
            self.assertEqual((entry["fstype"], entry["device"]), ("nfs4", "nas.local:/export"))
            self.assertEqual(self.entries(service)["/"]["percent"], 63.2)  # the rest is fine
            for _ in range(10):  # ten samples: the other mounts go on, the stuck one waits
                self.clock.advance(1)
                service.section()
                self.assertEqual(held_mounts(self.pool), [["/mnt/sshfs"], LOCAL_MOUNTS])
                self.pool.finish_all()
            self.assertEqual(self.entries(service)["/mnt/nas"]["error"], "timeout")
            self.assertEqual(service.stuck_calls, 1)
            self.assertEqual(self.disks.asked.count("/mnt/nas"), 1)
        warnings = [e for e in events if "has not answered" in e["log_format"]]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["mount"], "/mnt/nas")

        with capturedLogs() as events:
            release.set()  # the server answers at last
            deliver()
        self.assertEqual(self.entries(service)["/mnt/nas"]["percent"], 63.2)
        self.assertEqual(service.stuck_calls, 0)
        back = [e for e in events if "answers again" in e["log_format"]]
        self.assertEqual(len(back), 1)
        self.assertAlmostEqual(back[0]["seconds"], 12.0)
        service.section()  # measured again with the next sample
        self.assertEqual(held_mounts(self.pool), [["/mnt/nas"], ["/mnt/sshfs"], LOCAL_MOUNTS])

    def test_a_call_that_never_started_counts_as_stuck_until_it_returns(self) -> None:
        """Every thread busy: the call waits in the pool's queue past its timeout."""
        service = self.service(max_stuck=1)
        queued = self.pool.calls.pop(held_mounts(self.pool).index(["/mnt/nas"]))
        self.pool.finish_all()
        self.clock.advance(2)
        self.assertEqual(self.entries(service)["/mnt/nas"]["error"], "timeout")
        self.assertEqual(service.stuck_calls, 1)
        service.section()
        self.assertEqual(held_mounts(self.pool), [LOCAL_MOUNTS])  # sshfs: the bound
        self.pool.calls.insert(0, queued)
        self.pool.finish(0)  # it runs at last, sees it was given up, returns at once
        self.assertEqual(service.stuck_calls, 0)
        self.assertNotIn("/mnt/nas", self.disks.asked)
        service.section()
        self.assertIn(["/mnt/nas"], held_mounts(self.pool))

    def test_stuck_calls_are_bounded(self) -> None:
        with capturedLogs() as events:
            service = self.service(max_stuck=1)
            self.assertEqual(held_mounts(self.pool)[:2], [["/mnt/nas"], ["/mnt/sshfs"]])
            self.pool.finish(2)  # answer the local ones, hold /mnt/nas and sshfs
            self.assertEqual(len(self.pool.calls), 2)
            self.clock.advance(2)
            self.assertEqual(service.stuck_calls, 2)  # both timed out together
            # The bound is reached: nothing more is handed over for non-local mounts
            # while both stay stuck, however many samples pass.
            self.table.write_text(PI_MOUNTINFO + "\n45 22 0:48 / /mnt/smb rw - cifs //nas/share rw")
            for _ in range(5):
                self.clock.advance(1)
                service.section()
                self.assertEqual(len(self.pool.calls), 3)  # 2 stuck + the shared one
                self.pool.finish(2)
        self.assertEqual(self.entries(service)["/mnt/smb"]["error"], "timeout")
        self.assertNotIn("/mnt/smb", self.disks.asked)
        self.assertEqual(len([e for e in events if "the limit" in e["log_format"]]), 1)
        with capturedLogs() as events:
            self.pool.finish_all()  # both stuck calls return
            service.section()
        self.assertEqual(len([e for e in events if "measuring every mount" in e["log_format"]]), 1)
        self.pool.finish_all()
        self.assertNotIn("error", self.entries(service)["/mnt/smb"])

    def test_a_local_mount_stuck_in_the_shared_call(self) -> None:
        """The call has measured some mounts, is blocked in one, has others to go."""
        release = self.disks.hold("/media/pi/USB DISK")
        with capturedLogs() as events:
            service = self.service()
            shared = len(self.pool.calls) - 1
            deliver = self.pool.start_in_thread(shared)  # a real thread, really blocked
            self.pool.finish_all()
            assert self.disks.entered["/media/pi/USB DISK"].wait(10)
            self.clock.advance(2)
            entries = self.entries(service)
            self.assertEqual(entries["/boot/firmware"]["percent"], 63.2)  # measured before
            self.assertEqual(entries["/media/pi/USB DISK"]["error"], "timeout")
            self.assertNotIn("/tmp", entries)  # queued behind it, never started
            # The next sample measures the ones behind it in a new shared call, and
            # does not touch the stuck disk.
            service.section()
            self.assertEqual(len(self.pool.calls), 3)
            self.pool.finish_all()
            self.assertEqual(self.entries(service)["/tmp"]["percent"], 63.2)
            self.assertEqual(self.disks.asked.count("/media/pi/USB DISK"), 1)
            release.set()
            deliver()
        # The abandoned call stopped after the stuck mount: it started no other.
        self.assertEqual(self.disks.asked.count("/tmp"), 1)
        self.assertNotIn("error", self.entries(service)["/media/pi/USB DISK"])
        self.assertEqual(len([e for e in events if "has not answered" in e["log_format"]]), 1)
        # From now on the disk that hung is measured alone.
        service.section()
        self.assertEqual(len(self.pool.calls), 4)


# -- the worker pool, on the real reactor ---------------------------------------------------


def within(d: Deferred[Any], seconds: float = 15) -> Deferred[Any]:
    """C{d}, failing with a timeout instead of hanging the test run."""
    return d.addTimeout(seconds, reactor)


@pytest_twisted.inlineCallbacks
def test_pool_runs_off_the_reactor_thread() -> Any:
    pool = WorkerPool(reactor, max_threads=2)
    pool.startService()
    try:
        name = yield within(pool.run(lambda: threading.current_thread().name))
        assert name != threading.current_thread().name
        assert "pistatsd-machine" in name
    finally:
        yield within(pool.stopService())
    with pytest.raises(PoolStopped):
        yield pool.run(lambda: 1)


def test_pool_without_threads_runs_inline() -> None:
    """A reactor that takes no calls from threads (a memory reactor in a test of the
    whole daemon) could never get a result back: the pool runs the work at once."""
    from twisted.internet.testing import MemoryReactorClock

    pool = WorkerPool(MemoryReactorClock())
    pool.startService()
    d = pool.run(lambda: threading.current_thread().name)
    assert d.called and d.result == threading.current_thread().name
    pool.stopService()


@pytest_twisted.inlineCallbacks
def test_pool_stop_does_not_wait_for_a_stuck_call() -> Any:
    release = threading.Event()
    pool = WorkerPool(reactor, grace=0.2)
    pool.startService()
    stuck = pool.run(release.wait, 30)
    try:
        with capturedLogs() as events:
            started = reactor.seconds()
            yield within(pool.stopService())
            assert reactor.seconds() - started < 5
        assert len([e for e in events if "blocked call" in e["log_format"]]) == 1
    finally:
        release.set()
    assert (yield within(stuck)) is True
    pool.startService()  # a fresh pool after an abandoned one
    try:
        assert (yield within(pool.run(lambda: 7))) == 7
    finally:
        yield within(pool.stopService())


@pytest_twisted.inlineCallbacks
def test_service_on_the_real_reactor_with_a_blocked_statvfs(tmp_path: Path) -> Any:
    """Real threads, a statvfs that blocks until the test lets it go."""
    table = tmp_path / "mountinfo"
    table.write_text(PI_MOUNTINFO)
    disks = Disks()
    release = disks.hold("/mnt/nas")
    pool = WorkerPool(reactor)
    pool.startService()
    service = FilesystemsService(
        reactor,
        pool,
        timeout=0.3,
        mountinfo=str(table),
        statvfs=disks,
        fuse_statvfs=disks,
        sys_root=str(tmp_path),
    )
    service.startService()
    try:
        yield within(_until(lambda: _entry(service, "/mnt/nas").get("error") == "timeout"))
        assert _entry(service, "/")["percent"] == 63.2
        assert service.stuck_calls == 1
        release.set()
        yield within(_until(lambda: "error" not in _entry(service, "/mnt/nas")))
    finally:
        release.set()
        service.stopService()
        yield within(pool.stopService())


def _entry(service: FilesystemsService, mount: str) -> dict[str, Any]:
    entries = service.section()["filesystems"] or []
    return next((e for e in entries if e["mount"] == mount), {})


def _until(condition: Callable[[], bool], step: float = 0.05) -> Deferred[None]:
    """Fires once C{condition()} holds, checking every C{step} seconds on the reactor."""
    from twisted.internet.task import LoopingCall

    done: Deferred[None] = Deferred(lambda _: loop.stop())

    def check() -> None:
        if condition():
            loop.stop()

    loop = LoopingCall(check)
    loop.clock = reactor
    loop.start(step).addCallback(lambda _: done.callback(None))
    return done


# -- a really hung filesystem: FUSE whose statfs blocks (tests/fusehang.py) ---------------


class HungFuse:
    """tests/fusehang.py running: its pid, mount point, and how to make it answer."""

    def __init__(self, proc: subprocess.Popen[str], pid: int, mount_point: str) -> None:
        self.proc = proc
        self.pid = pid
        self.mount_point = mount_point

    def command(self, word: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()
        assert _readline(self.proc, 10) == word  # echoed once done


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    readable, _, _ = select.select([proc.stdout], [], [], timeout)
    if not readable:
        raise AssertionError(f"fusehang.py said nothing within {timeout} s")
    return proc.stdout.readline().strip()


@pytest.fixture
def hung_fuse(tmp_path: Path) -> Any:
    """A FUSE mount, in a mount namespace of its own, whose statfs blocks until released."""
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        _missing("mounting FUSE needs root and /dev/fuse")
    mount_point = tmp_path / "stale"
    mount_point.mkdir()
    proc = subprocess.Popen(
        [sys.executable, os.path.join(PROJECT, "tests", "fusehang.py"), str(mount_point)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first = _readline(proc, 20)
        if not first.startswith("ready "):
            _missing(f"tests/fusehang.py: {first}")
        yield HungFuse(proc, int(first.split()[1]), str(mount_point))
    finally:
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            proc.stdin.write("quit\n")
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _missing(message: str) -> None:
    if os.environ.get("PISTATSD_REQUIRE_REAL") == "1":
        pytest.fail(message + " and PISTATSD_REQUIRE_REAL=1", pytrace=False)
    pytest.skip(message)


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_a_hung_fuse_mount_times_out_and_answers_later(hung_fuse: HungFuse) -> Any:
    """Its statvfs really blocks in the kernel; the rest is measured, and nothing waits."""
    pool = WorkerPool(reactor)
    pool.startService()
    service = FilesystemsService(
        reactor,
        pool,
        timeout=0.5,
        mountinfo=f"/proc/{hung_fuse.pid}/mountinfo",  # its mount namespace's table
        path_root=f"/proc/{hung_fuse.pid}/root",  # and its paths
    )
    service.startService()
    try:
        started = reactor.seconds()
        yield within(_until(lambda: bool(_entry(service, hung_fuse.mount_point))))
        entry = _entry(service, hung_fuse.mount_point)
        assert entry["error"] == "timeout", entry
        assert entry["fstype"] == "fuse.hangfs"
        assert entry["total"] is None
        assert reactor.seconds() - started < 5
        assert _entry(service, "/")["total"] > 0  # the local filesystems went on
        for _ in range(5):  # more samples: still one stuck call, not five
            yield deferLater(reactor, 0.1, service.section)
        assert service.stuck_calls == 1
        hung_fuse.command("release")
        yield within(_until(lambda: "error" not in _entry(service, hung_fuse.mount_point)))
        entry = _entry(service, hung_fuse.mount_point)
        assert (entry["total"], entry["free"], entry["percent"]) == (4096000, 1228800, 66.7)
        assert entry["inodes_percent"] == 40.0
        assert service.stuck_calls == 0
    finally:
        service.stopService()
        yield within(pool.stopService())


@pytest.mark.real
def test_the_daemon_reports_a_hung_mount_and_still_stops_in_time(
    hung_fuse: HungFuse, tmp_path: Path
) -> None:
    """The real daemon, in the namespace that has the hung mount: /stats answers, SIGTERM
    ends it within 10 s although a thread is stuck in statfs."""
    nsenter = shutil.which("nsenter")
    if nsenter is None:
        _missing("nsenter (util-linux) is not installed")
    d = Daemon(["--state-dir", str(tmp_path / "state"), "--process-interval", "0"])
    d.argv = [nsenter, f"--mount=/proc/{hung_fuse.pid}/ns/mnt", "--", *d.argv]
    d.start()
    try:
        d.wait_for("has not answered statvfs", timeout=20)
        # ?interval= answers after 1.5 s with the latest snapshot then: one taken after
        # the timeout was noticed.
        status, _, body = d.get("/stats?interval=1.5", headers={"Host": "localhost"})
        assert status == 200
        snapshot = json.loads(body)
        entries = {e["mount"]: e for e in snapshot["filesystems"]}
        assert entries[hung_fuse.mount_point]["error"] == "timeout"
        assert entries["/"]["total"] > 0
        assert snapshot["processes"] is None
        started = time.monotonic()
        assert d.stop(timeout=10) == 0
        assert time.monotonic() - started < 10
        assert "blocked call(s) of the machine collectors" in d.text()
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)


# -- the statvfs helper process -----------------------------------------------------------


def test_helper_measures_and_reports_errors(tmp_path: Path) -> None:
    helper = HelperStatvfs()
    try:
        st = helper(str(tmp_path))
        assert st.f_blocks == os.statvfs(str(tmp_path)).f_blocks
        with pytest.raises(FileNotFoundError):
            helper(str(tmp_path / "missing"))
        with pytest.raises(OSError) as raised:
            helper(str(tmp_path / "missing"))
        assert raised.value.strerror == "No such file or directory"
    finally:
        helper.close()


def test_helper_that_dies_fails_its_calls_and_is_started_again(tmp_path: Path) -> None:
    # A helper that reads one request and dies without answering.
    helper = HelperStatvfs([sys.executable, "-c", "import sys; sys.stdin.readline()"])
    with pytest.raises(OSError) as raised:
        helper(str(tmp_path))
    assert raised.value.errno == 5
    assert "ended" in str(raised.value)
    with pytest.raises(OSError):  # a new one was started for this call
        helper(str(tmp_path))
    helper.close()


def test_helper_close_does_not_wait_and_it_ends() -> None:
    helper = HelperStatvfs()
    helper("/")
    process = helper._process
    assert process is not None
    helper.close()
    assert process.wait(10) == 0
