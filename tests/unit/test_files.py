"""The atomic file write: new content and mode at once, the old file kept on failure."""

from __future__ import annotations

import os
import stat

from twisted.trial.unittest import SynchronousTestCase

from pistatsd import files
from pistatsd.files import write_atomically


class WriteAtomicallyTests(SynchronousTestCase):
    def setUp(self):
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        self.path = os.path.join(self.directory, "key.pem")

    def leftovers(self) -> list[str]:
        return [name for name in os.listdir(self.directory) if name != "key.pem"]

    def test_writes_content_and_mode(self):
        write_atomically(self.path, b"old", 0o644)
        write_atomically(self.path, b"new" * 100_000, 0o600)
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"new" * 100_000)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertEqual(self.leftovers(), [])

    def test_failure_keeps_the_old_file(self):
        write_atomically(self.path, b"old", 0o600)

        def broken_fsync(fd: int) -> None:
            raise OSError(5, "Input/output error")

        self.patch(files.os, "fsync", broken_fsync)
        with self.assertRaises(OSError):
            write_atomically(self.path, b"new", 0o600)
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"old")
        self.assertEqual(self.leftovers(), [])

    def test_missing_directory(self):
        with self.assertRaises(FileNotFoundError):
            write_atomically(os.path.join(self.directory, "gone", "x"), b"data", 0o600)
