"""Isolation in memory and on temp files: fresh state dirs, snapshots of the real ones."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from tests.daemon import with_state_dir
from tests.isolation import changes, real_state_dirs, snapshot


class RealStateDirsTests(SynchronousTestCase):
    def test_root_and_user_defaults(self) -> None:
        self.assertEqual(
            real_state_dirs({"HOME": "/home/pi"}),
            ["/home/pi/.local/state/pistatsd", "/var/lib/pistatsd"],
        )
        self.assertIn("/x/state/pistatsd", real_state_dirs({"XDG_STATE_HOME": "/x/state"}))


class SnapshotTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = os.path.abspath(self.mktemp())

    def test_absent_then_created(self) -> None:
        before = snapshot(self.path)
        self.assertEqual(before, {})
        os.makedirs(os.path.join(self.path, "tls"))
        self.assertEqual(changes(before, snapshot(self.path)), [".", "tls"])

    def test_a_changed_file_is_named(self) -> None:
        os.makedirs(self.path)
        with open(os.path.join(self.path, "sensors.json"), "w") as f:
            f.write("{}")
        before = snapshot(self.path)
        self.assertEqual(changes(before, snapshot(self.path)), [])
        with open(os.path.join(self.path, "sensors.json"), "w") as f:
            f.write('{"a": 1}')
        self.assertEqual(changes(before, snapshot(self.path)), ["sensors.json"])

    def test_a_removed_file_is_named(self) -> None:
        os.makedirs(self.path)
        open(os.path.join(self.path, "influx-spool.lp"), "w").close()
        before = snapshot(self.path)
        os.remove(os.path.join(self.path, "influx-spool.lp"))
        self.assertIn("influx-spool.lp", changes(before, snapshot(self.path)))


class WithStateDirTests(SynchronousTestCase):
    def test_a_fresh_dir_is_added(self) -> None:
        first = with_state_dir(["--www", "w"])
        second = with_state_dir(["--www", "w"])
        self.assertEqual(first[:3], ["--www", "w", "--state-dir"])
        self.assertNotEqual(first[3], second[3])
        self.assertEqual(os.listdir(first[3]), [])
        self.assertNotIn(first[3], real_state_dirs())

    def test_a_named_dir_is_kept(self) -> None:
        for args in (["--state-dir", "/s"], ["--state-dir=/s"]):
            self.assertEqual(with_state_dir(args), args)

    def test_a_config_file_naming_one_is_kept(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('state-dir = "/s"\n')
        self.assertEqual(with_state_dir(["--config", path]), ["--config", path])

    def test_a_config_file_without_one_gets_one(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("heartbeat = 0\n")
        self.assertEqual(with_state_dir(["--config", path])[2], "--state-dir")
        for broken in ("/nonexistent/p.toml", self._bad_toml()):
            self.assertEqual(with_state_dir(["--config", broken])[2], "--state-dir")

    def _bad_toml(self) -> str:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("port = [\n")
        return path
