"""The durable history against real faults (SPEC §12): a full disk (a small
tmpfs), a kill -9 of the real daemon, a corrupt file under the real daemon."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

import pytest
from twisted.trial.unittest import SynchronousTestCase

from tests.daemon import Daemon, fresh_state_dir
from tests.influxd import wait_until
from tests.real import missing
from tests.unit.test_history_store import (
    T0,
    Harness,
    Logged,
    snapshot,
    stored_rows,
    write_version_1,
)


def mount_tmpfs(size: str) -> str:
    """A fresh tmpfs of C{size} (C{mount} needs root); L{missing} where not permitted."""
    where = tempfile.mkdtemp(prefix="pistatsd-full-")
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", where],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError as e:
        os.rmdir(where)
        missing(f"cannot run mount: {e}")
    if done.returncode != 0:
        os.rmdir(where)
        missing(f"cannot mount a tmpfs: {done.stderr.strip()}")
    return where


def unmount(where: str) -> None:
    subprocess.run(["umount", where], check=True, timeout=30)
    os.rmdir(where)


def fill_up(directory: str) -> str:
    """Write a file until the filesystem is full; returns its path."""
    path = os.path.join(directory, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
    finally:
        os.close(fd)
    return path


@pytest.mark.real
class DiskFullTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.where = mount_tmpfs("1m")
        self.addCleanup(unmount, self.where)
        self.path = os.path.join(self.where, "history.sqlite3")
        self.log = Logged(self)

    def test_rows_wait_while_the_disk_is_full_and_are_written_after(self) -> None:
        h = Harness(self, self.path)
        h.service.record(snapshot(T0, 1.0))
        h.clock.advance(60)
        filler = fill_up(self.where)
        for i in range(1, 300):
            h.service.record(
                {
                    "timestamp": T0 + 10 * i,
                    "sensors": {f"s{n}": {"value": float(i)} for n in range(30)},
                }
            )
            if i % 6 == 0:
                h.clock.advance(60)
        state = h.service.state()
        self.assertGreater(state["flush_failures"], 1)
        self.assertGreater(state["pending_rows"], 0)
        self.assertEqual(self.log.count("cannot write"), 1)
        os.remove(filler)
        h.clock.advance(60)
        state = h.service.state()
        self.assertIsNone(state["last_error"])
        # The open 15 min and 3 h buckets of the 30 series, the 3 h ones of the first two.
        self.assertEqual(state["pending_rows"], 2 * 30 + 2)
        rows = [r for r in stored_rows(self.path, 10) if r[0] == "sensors.s29"]
        self.assertEqual(len(rows), 299)


def health(d: Daemon) -> dict[str, object]:
    status, _, body = d.get("/health")
    assert status == 200, body
    return json.loads(body)["history"]


class DaemonTests(SynchronousTestCase):
    def test_kill_9_loses_at_most_one_flush_interval(self) -> None:
        state_dir = fresh_state_dir()
        args = ["--state-dir", state_dir, "--history-flush", "1", "--sample-interval", "0.2"]
        d = Daemon(args).start()
        self.addCleanup(lambda: d.proc is not None and d.proc.poll() is None and d.proc.kill())
        first = wait_until(lambda: health(d)["last_flush"], 20, "a first flush", pace=d.proc)
        wait_until(
            lambda: (health(d)["last_flush"] or 0) > first, 20, "a second flush", pace=d.proc
        )
        before = health(d)
        self.assertTrue(before["open"])
        self.assertEqual(before["flush_failures"], 0)
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(10)
        path = os.path.join(state_dir, "history.sqlite3")
        rows = [r for r in stored_rows(path, 10) if r[0] == "cpu.percent"]
        self.assertTrue(rows)
        newest = max(r[1] for r in rows)
        # What was flushed before the kill is there: the newest 10 s bucket is at
        # most one flush interval (plus the bucket) older than the last flush.
        self.assertGreaterEqual(newest, before["last_flush"] - 1 - 10)
        again = Daemon(args).start()
        self.addCleanup(again.stop)
        after = wait_until(
            lambda: (h := health(again))["open"] and h, 20, "the file open", pace=again.proc
        )
        self.assertGreaterEqual(after["series"], 2)
        self.assertIsNotNone(after["oldest"])
        self.assertLessEqual(after["oldest"], newest)
        self.assertNotIn("moved aside", again.text())

    def test_a_corrupt_file_is_moved_aside_and_the_daemon_starts(self) -> None:
        state_dir = fresh_state_dir()
        with open(os.path.join(state_dir, "history.sqlite3"), "wb") as f:
            f.write(os.urandom(8192))
        d = Daemon(["--state-dir", state_dir, "--history-flush", "1"]).start()
        self.addCleanup(d.stop)
        d.wait_for("moved aside")
        wait_until(lambda: health(d)["last_flush"], 20, "a flush", pace=d.proc)
        self.assertTrue(health(d)["open"])
        self.assertEqual(
            len([n for n in os.listdir(state_dir) if n.startswith("history.sqlite3.corrupt-")]), 1
        )

    def test_a_version_1_file_is_converted_and_served(self) -> None:
        """A file of the layout before slots, written hours ago, under the real daemon:
        converted at start (nothing moved aside), its rows served by /stats/series."""
        state_dir = fresh_state_dir()
        path = os.path.join(state_dir, "history.sqlite3")
        start = int(time.time()) // 3600 * 3600 - 6 * 3600
        write_version_1(
            path,
            {
                10: [(start + 10 * i, "cpu.percent", 2.0, 6.0, 4.0, 2) for i in range(360)],
                60: [(start + 60 * i, "cpu.percent", 2.0, 18.0, 4.0, 6) for i in range(60)],
            },
        )
        d = Daemon(["--state-dir", state_dir, "--history-flush", "1"]).start()
        self.addCleanup(d.stop)
        wait_until(lambda: health(d)["last_flush"], 20, "a flush", pace=d.proc)
        self.assertNotIn("moved aside", d.text())
        query = f"/stats/series?names=cpu.percent&from={start}&to={start + 3600}&points=360"
        status, _, body = d.get(query)
        self.assertEqual(status, 200, body)
        answer = json.loads(body)
        self.assertEqual(answer["step"], 10)
        self.assertEqual(answer["values"]["cpu.percent"]["avg"], [3.0] * 360)
        db = sqlite3.connect(path)
        try:
            self.assertEqual(db.execute("PRAGMA user_version").fetchone(), (2,))
        finally:
            db.close()

    def test_history_off(self) -> None:
        state_dir = fresh_state_dir()
        d = Daemon(["--state-dir", state_dir, "--history-db", "none"]).start()
        self.addCleanup(d.stop)
        from pistatsd.status import HISTORY_OFF

        self.assertEqual(health(d), dict(HISTORY_OFF))
        self.assertFalse(os.path.exists(os.path.join(state_dir, "history.sqlite3")))
        _, _, metrics = d.get("/metrics")
        self.assertNotIn(b"pistatsd_history_", metrics)

    def test_shutdown_writes_what_is_left(self) -> None:
        state_dir = fresh_state_dir()
        d = Daemon(["--state-dir", state_dir, "--history-flush", "3600"]).start()
        wait_until(lambda: health(d)["pending_rows"], 20, "recorded rows", pace=d.proc)
        _, _, metrics = d.get("/metrics")
        self.assertIn(b"pistatsd_history_pending_rows", metrics)
        self.assertEqual(d.stop(), 0)
        rows = stored_rows(os.path.join(state_dir, "history.sqlite3"), 10)
        self.assertIn("memory.percent", {r[0] for r in rows})
        shutil.rmtree(state_dir, ignore_errors=True)


def test_sqlite_in_wal_mode() -> None:
    """The file is in WAL mode with small pages (why: see pistatsd.history.schema)."""
    directory = tempfile.mkdtemp()
    try:
        from pistatsd.history.store import open_store

        opened = open_store(os.path.join(directory, "h.sqlite3"), 1 << 20)
        opened.store.close()
        db = sqlite3.connect(os.path.join(directory, "h.sqlite3"))
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA page_size").fetchone() == (1024,)
        db.close()
    finally:
        shutil.rmtree(directory)


_OPEN_AS_IS = (
    "import json, sys\n"
    "from pistatsd.history.store import open_store\n"
    "opened = open_store(sys.argv[1], 1 << 20)\n"
    "print(json.dumps([opened.moved_aside, opened.reason]))\n"
)


def test_unreadable_file_is_moved_aside() -> None:
    """chmod 000: run as an unprivileged user (root reads anything), with no capabilities."""
    directory = tempfile.mkdtemp()
    try:
        path = os.path.join(directory, "history.sqlite3")
        with open(path, "wb") as f:
            f.write(b"")
        os.chmod(path, 0)
        command = [sys.executable, "-c", _OPEN_AS_IS, path]
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                missing("setpriv is not installed (needed to open a file as nobody)")
            os.chown(directory, 65534, 65534)
            os.chown(path, 65534, 65534)
            os.chmod(directory, 0o755)
            command = [
                setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", *command,
            ]  # fmt: skip
        project = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, PYTHONPATH=project),
        )
        assert done.returncode == 0, done.stderr
        moved, reason = json.loads(done.stdout)
        assert moved is not None and moved.startswith(path + ".corrupt-"), (moved, reason)
        assert "unable to open" in reason
        assert os.stat(moved).st_mode & 0o777 == 0  # the unreadable file, kept as it was
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        db.close()
    finally:
        shutil.rmtree(directory)
