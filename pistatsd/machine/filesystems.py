"""The snapshot's C{filesystems}: space and inodes of every real mount, never waited for.

C{statvfs} on a stale NFS or CIFS mount, or on a FUSE filesystem whose
daemon is stuck, blocks until the server answers: on a hard mount, forever.
So no filesystem is measured on the reactor thread.  Each sample the
snapshot gets the latest results at once, and new measurements are handed
to the L{WorkerPool}:

 - local filesystems (L{pistatsd.machine.mounts.LOCAL_TYPES}) share one
   call, which C{statvfs}es them one after the other (a few microseconds
   each);
 - every other mount (network, FUSE, unknown types) gets a call of its own,
   and so does a local one once it has been stuck;
 - FUSE mounts are measured by a helper process
   (L{pistatsd.machine.statvfs_helper}): the kernel waits for a stuck FUSE
   server uninterruptibly, and a thread of ours caught there would keep the
   daemon from ever exiting.  NFS and CIFS waits are killable: their
   stuck threads die with the process.

A call that has not answered within C{timeout} seconds makes its mount
report C{"error": "timeout"} (the measured fields C{null}; the mount, device,
type and read-only flag stay, they come from the mount table).  That call is
not repeated while it is outstanding (at most one per mount), and at most
C{max_stuck} stuck calls are left outstanding in all, so stuck threads cannot
pile up; a mount that cannot be tried because of that bound reports
C{"timeout"} too.  When the stuck call returns, its answer is used and the
mount is measured again with the next sample.  Each episode (a mount stuck,
the bound reached, the mount table unreadable) is logged once, when it
starts, and once when it ends.

Before the first answers (the first sample after start), C{filesystems} is
C{null}; afterwards a list, in mount order.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from attrs import define, field
from twisted.application.service import Service
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from pistatsd.machine.mounts import Mount, device_name, parse_mountinfo, select_filesystems
from pistatsd.machine.statvfs_helper import HelperStatvfs
from pistatsd.machine.threads import Runner

_log = Logger()

Entry = dict[str, Any]
"""One element of the snapshot's C{filesystems} list."""

StatVfs = Callable[[str], os.statvfs_result]

TIMEOUT = 2.0
"""Seconds a C{statvfs} may take before its mount is reported as timed out."""

MAX_STUCK = 2
"""Stuck calls left outstanding at most (the pool keeps threads for the rest)."""


def usage(mount: Mount, device: str, st: os.statvfs_result) -> Entry:
    """The snapshot entry for a measured mount: sizes in bytes, as C{df} counts them.

    C{free} is what an ordinary user may still write (C{f_bavail}); C{used}
    excludes the blocks reserved for root; C{percent} is C{used} of
    C{used + free}, as C{df} and psutil compute it, so a full disk reads 100
    even with reserved blocks left.  Filesystems without inodes (vfat, many
    FUSE) report C{inodes_percent} as C{null}.
    """
    frsize = st.f_frsize or st.f_bsize
    total = st.f_blocks * frsize
    free = st.f_bavail * frsize
    used = (st.f_blocks - st.f_bfree) * frsize
    usable = used + free
    inodes_percent = None
    if st.f_files > 0:
        inodes_percent = round((st.f_files - st.f_ffree) / st.f_files * 100.0, 1)
    return {
        **_identity(mount, device),
        "total": total,
        "used": used,
        "free": free,
        "percent": round(used / usable * 100.0, 1) if usable > 0 else 0.0,
        "inodes_percent": inodes_percent,
        # Not f_flag: it has this mount's read-only flag too (see Mount.read_only).
        "read_only": mount.read_only,
    }


def failed(mount: Mount, device: str, error: str) -> Entry:
    """The snapshot entry for a mount that could not be measured: why, and nulls."""
    return {
        **_identity(mount, device),
        "total": None,
        "used": None,
        "free": None,
        "percent": None,
        "inodes_percent": None,
        "read_only": mount.read_only,
        "error": error,
    }


def _identity(mount: Mount, device: str) -> Entry:
    return {"mount": mount.mount_point, "device": device, "fstype": mount.fstype}


@define(eq=False)
class _Call:
    """One call in the pool: the mounts it measures and what it has found so far.

    The worker thread appends answers as it goes, so a call that times out
    half-way still delivers the mounts it did measure, and knows which mount
    it is stuck on.  C{lock} makes "start the next mount" and "give up on this
    call" exclusive: once given up, the worker starts no further mount, so a
    mount is never in two calls at once.
    """

    mounts: Sequence[Mount]
    path_root: str
    statvfs: StatVfs
    started: float
    answers: list[tuple[Mount, os.statvfs_result | OSError]] = field(factory=list)
    current: Mount | None = None
    delivered: int = 0
    """How many of C{answers} the reactor side has used already."""
    given_up: bool = False
    timer: IDelayedCall | None = None
    lock: threading.Lock = field(factory=threading.Lock)

    def measure(self) -> None:
        """In a worker thread: C{statvfs} each mount in turn, until done or given up."""
        for mount in self.mounts:
            with self.lock:
                if self.given_up:
                    return
                self.current = mount
            path = os.path.join(self.path_root, mount.mount_point.lstrip("/"))
            try:
                answer: os.statvfs_result | OSError = self.statvfs(path)
            except OSError as e:
                answer = e
            self.answers.append((mount, answer))
        with self.lock:
            self.current = None

    def give_up(self) -> tuple[list[tuple[Mount, os.statvfs_result | OSError]], Mount | None]:
        """On the reactor: stop starting mounts; the answers so far and the mount stuck in."""
        with self.lock:
            self.given_up = True
            answers = list(self.answers)
            stuck = self.current
        if stuck is not None and any(m is stuck for m, _ in answers):
            stuck = None  # answered between the two
        return answers, stuck


class FilesystemsService(Service):
    """Measures every real mounted filesystem in the background; see the module docstring.

    @param pool: the worker threads (started before this service).
    @param mountinfo: the mount table to read (C{/proc/self/mountinfo}).
    @param path_root: prefix of the paths given to C{statvfs}; C{/} on the
        machine itself, the host's root when run in a container that mounts it.
    @param sys_root: where sysfs is, to name the device of C{/dev/root}.
    @param statvfs: C{os.statvfs}, or a stand-in in tests.
    @param fuse_statvfs: what measures FUSE mounts: by default a helper process
        (L{HelperStatvfs}, started when the first FUSE mount is measured), so a
        stuck FUSE server cannot keep the daemon from exiting.
    """

    def __init__(
        self,
        clock: IReactorTime,
        pool: Runner,
        timeout: float = TIMEOUT,
        max_stuck: int = MAX_STUCK,
        mountinfo: str = "/proc/self/mountinfo",
        path_root: str = "/",
        sys_root: str = "/sys",
        statvfs: StatVfs = os.statvfs,
        fuse_statvfs: StatVfs | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        self._clock = clock
        self._pool = pool
        self._timeout = timeout
        self.max_stuck = max_stuck
        self._mountinfo = mountinfo
        self._path_root = path_root
        self._sys_root = sys_root
        self._statvfs = statvfs
        self._helper = HelperStatvfs() if fuse_statvfs is None else None
        self._fuse_statvfs: StatVfs = fuse_statvfs or self._helper  # type: ignore[assignment]
        self._mounts: list[Mount] = []
        self._devices: dict[int, str] = {}
        self._entries: dict[int, Entry] = {}
        #: Mount id to the call measuring it (at most one each).
        self._outstanding: dict[int, _Call] = {}
        #: Calls that timed out and have not returned yet.
        self._stuck: set[_Call] = set()
        #: Mounts measured alone: not local, or once stuck in the shared call.
        self._alone: set[int] = set()
        #: Mount id to when its episode of timeouts began (clock time).
        self._timed_out: dict[int, float] = {}
        self._table_failures = 0
        self._bounded: set[int] = set()
        self._answered_once = False

    @property
    def stuck_calls(self) -> int:
        """How many timed-out calls are still outstanding (each holds a thread)."""
        return len(self._stuck)

    def startService(self) -> None:
        """Start measuring now, so the first answers are there by the second sample."""
        super().startService()
        self.refresh()

    def stopService(self) -> None:
        """Stop measuring; calls in progress are left to the pool's shutdown."""
        super().stopService()
        if self._helper is not None:
            self._helper.close()
        for call in set(self._outstanding.values()):
            if call.timer is not None and call.timer.active():
                call.timer.cancel()

    def section(self, when: float | None = None) -> dict[str, list[Entry] | None]:
        """The latest results (never waits), and measurements started for the next sample."""
        self.refresh()
        return {"filesystems": self.latest()}

    def latest(self) -> list[Entry] | None:
        """The latest entry of every mount measured so far; C{None} before any answer."""
        if not self._answered_once:
            return None
        return [self._entries[m.mount_id] for m in self._mounts if m.mount_id in self._entries]

    def refresh(self) -> None:
        """Read the mount table and hand the mounts not being measured to the pool."""
        if not self.running:
            return
        self._read_table()
        shared: list[Mount] = []
        for mount in self._mounts:
            if mount.mount_id in self._outstanding:
                continue
            if mount.local and mount.mount_id not in self._alone:
                shared.append(mount)
            elif len(self._stuck) >= self.max_stuck:
                self._cannot_try(mount)
            else:
                self._start([mount])
        if shared:
            self._start(shared)
        if self._bounded and len(self._stuck) < self.max_stuck:
            _log.info(
                "Fewer than {limit} filesystem calls are stuck: measuring every mount again",
                limit=self.max_stuck,
            )
            self._bounded.clear()

    def _read_table(self) -> None:
        """The mounts to report now; the previous table while the file cannot be read."""
        try:
            with open(self._mountinfo, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        except OSError as e:
            if self._table_failures == 0:
                _log.warn(
                    "Cannot read the mount table {path}: {error}; keeping the last one",
                    path=self._mountinfo,
                    error=e.strerror or e,
                )
            self._table_failures += 1
            return
        if self._table_failures:
            _log.info("The mount table {path} is readable again", path=self._mountinfo)
            self._table_failures = 0
        mounts = select_filesystems(parse_mountinfo(text))
        ids = {m.mount_id for m in mounts}
        for gone in set(self._entries) - ids:
            del self._entries[gone]
        for gone in set(self._timed_out) - ids:
            del self._timed_out[gone]
        self._alone &= ids
        self._devices = {
            m.mount_id: self._devices.get(m.mount_id) or self._device(m) for m in mounts
        }
        self._mounts = mounts

    def _device(self, mount: Mount) -> str:
        return device_name(mount, self._sys_root)

    def _start(self, mounts: list[Mount]) -> None:
        # FUSE mounts are never in a shared call (not local): each call is one kind.
        statvfs = self._fuse_statvfs if mounts[0].fuse else self._statvfs
        call = _Call(mounts, self._path_root, statvfs, started=self._clock.seconds())
        for mount in mounts:
            self._outstanding[mount.mount_id] = call
        call.timer = self._clock.callLater(self._timeout, self._time_out, call)
        d = self._pool.run(call.measure)
        d.addCallbacks(self._returned, self._call_failed, callbackArgs=(call,), errbackArgs=(call,))

    def _returned(self, _: None, call: _Call) -> None:
        """A call finished (in time or late): use every answer it has not delivered yet."""
        if call.timer is not None and call.timer.active():
            call.timer.cancel()
        self._stuck.discard(call)
        self._release(call)
        self._deliver(call.answers[call.delivered :])
        call.delivered = len(call.answers)

    def _call_failed(self, reason: Failure, call: _Call) -> None:
        """Cannot happen (C{measure} catches OSError), except a pool stopped under us."""
        if call.timer is not None and call.timer.active():
            call.timer.cancel()
        self._stuck.discard(call)
        self._release(call)
        if self.running:
            _log.failure("Measuring filesystems failed", failure=reason)

    def _release(self, call: _Call) -> None:
        for mount in call.mounts:
            if self._outstanding.get(mount.mount_id) is call:
                del self._outstanding[mount.mount_id]

    def _time_out(self, call: _Call) -> None:
        """C{timeout} seconds passed: report what answered, and the rest as timed out.

        The mount the call is stuck in stays outstanding (it is not tried again
        until the call returns) and is measured alone from then on; the mounts
        queued behind it in a shared call were never started, so they are free
        to go into the next shared call.  A call that never started at all (every
        thread busy) counts as stuck too, so the pool's queue cannot grow.
        """
        call.timer = None
        answers, stuck = call.give_up()
        self._deliver(answers[call.delivered :])
        call.delivered = len(answers)
        answered = {m.mount_id for m, _ in answers}
        never_started = not answers and stuck is None
        for mount in call.mounts:
            if mount.mount_id in answered:
                continue
            if mount is stuck:
                self._alone.add(mount.mount_id)
                self._mark_timed_out(mount, call.started)
            elif never_started:
                self._mark_timed_out(mount, call.started)
            else:
                del self._outstanding[mount.mount_id]
        if stuck is not None or never_started:
            self._stuck.add(call)
        else:
            self._release(call)

    def _mark_timed_out(self, mount: Mount, since: float) -> None:
        self._entries[mount.mount_id] = self._failed(mount, "timeout")
        self._answered_once = True
        if mount.mount_id not in self._timed_out:
            self._timed_out[mount.mount_id] = since
            _log.warn(
                "Filesystem {mount} ({fstype} on {device}) has not answered statvfs in "
                "{timeout:g} s: reported as timed out, measured again once that call returns",
                mount=mount.mount_point,
                fstype=mount.fstype,
                device=self._devices.get(mount.mount_id, mount.source),
                timeout=self._timeout,
            )

    def _cannot_try(self, mount: Mount) -> None:
        """The bound on stuck calls is reached: report the mount as timed out, untried."""
        self._entries[mount.mount_id] = self._failed(mount, "timeout")
        self._answered_once = True
        if not self._bounded:
            _log.warn(
                "{n} filesystem calls are stuck, the limit: {mount} and any other mount "
                "without an answer are reported as timed out until one returns",
                n=len(self._stuck),
                mount=mount.mount_point,
            )
        self._bounded.add(mount.mount_id)

    def _deliver(self, answers: Sequence[tuple[Mount, os.statvfs_result | OSError]]) -> None:
        current = {m.mount_id for m in self._mounts}
        for mount, answer in answers:
            if mount.mount_id not in current:
                continue  # unmounted meanwhile
            device = self._devices.get(mount.mount_id, mount.source)
            if isinstance(answer, OSError):
                error = answer.strerror or str(answer)
                previous = self._entries.get(mount.mount_id, {}).get("error")
                if previous != error:
                    _log.warn(
                        "Cannot measure filesystem {mount}: {error}",
                        mount=mount.mount_point,
                        error=error,
                    )
                self._entries[mount.mount_id] = failed(mount, device, error)
            else:
                previous = self._entries.get(mount.mount_id, {}).get("error")
                if previous is not None and previous != "timeout":
                    _log.info("Filesystem {mount} can be measured again", mount=mount.mount_point)
                self._entries[mount.mount_id] = usage(mount, device, answer)
            since = self._timed_out.pop(mount.mount_id, None)
            if since is not None:
                _log.info(
                    "Filesystem {mount} answers again after {seconds:.1f} s",
                    mount=mount.mount_point,
                    seconds=self._clock.seconds() - since,
                )
        if answers:
            self._answered_once = True

    def _failed(self, mount: Mount, error: str) -> Entry:
        return failed(mount, self._devices.get(mount.mount_id, mount.source), error)
