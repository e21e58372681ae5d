"""A helper process that runs C{statvfs} for the daemon, where a hang cannot hold it.

Why a process: a FUSE request that its server has read but not answered (a
stuck sshfs, rclone or ntfs-3g) is waited for in the kernel I{uninterruptibly}.
A thread of pistatsd blocked there cannot be killed, even by SIGKILL, and the
process cannot exit until the FUSE server answers: SIGTERM would leave the
daemon hanging as a zombie.  (NFS and CIFS waits are killable, so threads are
enough for them.)  So FUSE mounts are measured by this helper instead; when
it is the one stuck, the daemon still exits, and the helper follows once the
kernel lets it go.

This file runs as a script (C{python -S statvfs_helper.py}), standard library
only, so it starts in milliseconds whatever the installation.  The protocol
is JSON lines: requests C{{"id": 1, "path": "/mnt/x"}} on stdin; answers
C{{"id": 1, "statvfs": [10 numbers]}} or C{{"id": 1, "errno": 13, "error":
"Permission denied"}} on stdout, each from a thread of its own, so one hung
path holds up only its own answer.  End of input ends the helper.

The daemon's side is L{HelperStatvfs}, a blocking C{statvfs} stand-in for the
worker threads of L{pistatsd.machine.filesystems}.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from typing import IO, Any


def _answer(request: dict[str, Any], out: IO[bytes], lock: threading.Lock) -> None:
    try:
        answer: dict[str, Any] = {"id": request["id"], "statvfs": list(os.statvfs(request["path"]))}
    except OSError as e:
        answer = {"id": request["id"], "errno": e.errno, "error": e.strerror or str(e)}
    line = json.dumps(answer).encode() + b"\n"
    with lock:
        out.write(line)
        out.flush()


def main() -> None:
    """Serve requests from stdin until it closes."""
    out = sys.stdout.buffer
    lock = threading.Lock()
    for line in sys.stdin.buffer:
        try:
            request = json.loads(line)
        except ValueError:
            continue
        threading.Thread(target=_answer, args=(request, out, lock), daemon=True).start()
    os._exit(0)  # without waiting for threads stuck in the kernel


class HelperStatvfs:
    """C{statvfs} through the helper process: blocking, thread-safe, started on first use.

    Each call waits (in the caller's worker thread, interruptibly) for the
    helper's answer.  If the helper dies, every waiting call fails with
    C{EIO} and the next call starts a new helper.
    """

    def __init__(self, argv: list[str] | None = None) -> None:
        self._argv = argv or [sys.executable, "-S", "-u", os.path.abspath(__file__)]
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        #: Request id to (the helper asked, its waiter, where its answer goes).
        self._waiting: dict[
            int, tuple[subprocess.Popen[bytes], threading.Event, list[dict[str, Any]]]
        ] = {}
        self._next_id = 0

    def __call__(self, path: str) -> os.statvfs_result:
        done = threading.Event()
        answer: list[dict[str, Any]] = []
        with self._lock:
            process = self._started()
            self._next_id += 1
            request_id = self._next_id
            self._waiting[request_id] = (process, done, answer)
            try:
                assert process.stdin is not None
                process.stdin.write(json.dumps({"id": request_id, "path": path}).encode() + b"\n")
                process.stdin.flush()
            except OSError:
                del self._waiting[request_id]
                raise OSError(5, "the statvfs helper process is gone") from None
        done.wait()
        result = answer[0]
        if "statvfs" in result:
            return os.statvfs_result(result["statvfs"])
        raise OSError(result.get("errno") or 5, result.get("error") or "statvfs failed")

    def close(self) -> None:
        """Close the helper's input: it exits (once any stuck call lets it); never waits."""
        with self._lock:
            process, self._process = self._process, None
        if process is not None and process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()

    def _started(self) -> subprocess.Popen[bytes]:
        """The running helper, started if needed (with C{_lock} held)."""
        if self._process is None or self._process.poll() is not None:
            # Not even stderr is shared: a helper stuck in the kernel must hold
            # nothing of the daemon's (a supervisor waits for its output to close).
            process = subprocess.Popen(
                self._argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                close_fds=True,
            )
            self._process = process
            threading.Thread(
                target=self._read, args=(process,), name="pistatsd-statvfs-helper", daemon=True
            ).start()
        return self._process

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        """Deliver the helper's answers; when it ends, fail whatever still waits on it."""
        assert process.stdout is not None
        for line in process.stdout:
            try:
                answer = json.loads(line)
                with self._lock:
                    _, done, slot = self._waiting.pop(answer["id"])
            except (ValueError, KeyError, TypeError):
                continue
            slot.append(answer)
            done.set()
        process.wait()
        with self._lock:
            if self._process is process:
                self._process = None
            lost = [key for key, (asked, _, _) in self._waiting.items() if asked is process]
            failed = [self._waiting.pop(key) for key in lost]
        for _, done, slot in failed:
            slot.append({"errno": 5, "error": "the statvfs helper process ended"})
            done.set()


if __name__ == "__main__":
    main()
