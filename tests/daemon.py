"""Run the real twistd plugin in a subprocess for loopback integration tests."""

from __future__ import annotations

import http.client
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READY_MARK = "ready: listening on"
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """C{twistd -n pistatsd ...} as a child process, read line by line until ready."""

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        port: int | None = None,
        twistd_args: Sequence[str] = ("-n", "--pidfile="),
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.argv = [
            TWISTD,
            *twistd_args,
            "pistatsd",
            "--port",
            f"tcp:{self.port}:interface=127.0.0.1",
            "--heartbeat",
            "0",
            *args,
        ]
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.cwd = cwd
        self.output: list[str] = []
        self._pending = b""
        self._terminated = False
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Daemon:
        """Start and wait for the ready line; fail with the output if it never comes."""
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            bufsize=0,
            env=self.env,
            cwd=self.cwd,
        )
        self.wait_for(READY_MARK, timeout)
        return self

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        """Read output lines until one contains C{text}; returns that line.

        Reads the raw pipe (no Python buffering between select and read), so a
        line that has arrived is never missed.
        """
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            while b"\n" in self._pending:
                raw, self._pending = self._pending.split(b"\n", 1)
                line = raw.decode("utf-8", "replace") + "\n"
                self.output.append(line)
                if text in line:
                    return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {text!r} within {timeout}s:\n" + self.text())
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(
                    f"daemon exited ({self.proc.wait()}) before {text!r}:\n" + self.text()
                )
            self._pending += chunk

    def terminate(self) -> None:
        """Send SIGTERM once (a second one while exiting would kill the process)."""
        assert self.proc is not None
        if not self._terminated and self.proc.poll() is None:
            self._terminated = True
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then the exit status (fails the test if it takes over C{timeout})."""
        assert self.proc is not None
        self.terminate()
        try:
            rest, _ = self.proc.communicate(timeout=timeout)
            rest = (self._pending + rest).decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rest, _ = self.proc.communicate()
            self.output.append(rest.decode("utf-8", "replace"))
            raise AssertionError(f"daemon did not exit within {timeout}s:\n{self.text()}") from None
        self.output.append(rest)
        return self.proc.returncode

    def text(self) -> str:
        """Everything the daemon printed so far."""
        return "".join(self.output)

    def get(
        self,
        path: str,
        headers: dict[str, str] | None = None,
        method: str = "GET",
        body: bytes | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request over a fresh loopback connection."""
        return http_request(self.port, method, path, headers, body)


def http_request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to 127.0.0.1:C{port} on a fresh connection: status, headers, body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def run_twistd(args: Sequence[str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run C{twistd ...} to completion (for start-up failures)."""
    return subprocess.run(
        [TWISTD, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
