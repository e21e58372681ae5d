"""Run the real twistd plugin in a subprocess for loopback integration tests.

Every daemon started here has a state directory of its own (never the real
C{/var/lib/pistatsd} or C{~/.local/state/pistatsd}) and listens on a port the
kernel picks (C{tcp:0}); the port is read back from the daemon's log.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import http.client
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READY_MARK = "ready: listening on"
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
#: The C{pistatsd} command (L{pistatsd.launcher}): twistd with pistatsd's plugin only.
LAUNCHER = os.path.join(os.path.dirname(sys.executable), "pistatsd")
#: Where the kernel picks the port; L{bound_ports} reads it back from the log.
LOOPBACK = "tcp:0:interface=127.0.0.1"
#: The line C{pistatsd.listening} logs once a listener is bound.
_BOUND = re.compile(r"listening on --(?P<option>[\w-]+) \S+ at .*\bport=(?P<port>\d+)")


def bound_ports(log: str, option: str = "port") -> list[int]:
    """The TCP ports a daemon's log says it bound for C{--option}, in order."""
    ports = []
    for line in log.splitlines():
        match = _BOUND.search(line)
        if match is not None and match["option"] == option:
            ports.append(int(match["port"]))
    return ports


@functools.cache
def _state_root() -> str:
    """One temporary folder for this test run's state directories, removed at exit."""
    root = tempfile.mkdtemp(prefix="pistatsd-test-state-")
    atexit.register(shutil.rmtree, root, True)
    return root


def fresh_state_dir() -> str:
    """A new empty state directory for one daemon."""
    return tempfile.mkdtemp(dir=_state_root())


def _names_state_dir(args: Sequence[str]) -> bool:
    """Whether C{args} choose a state directory themselves (option or config file)."""
    for i, arg in enumerate(args):
        if arg == "--state-dir" or arg.startswith("--state-dir="):
            return True
        if arg == "--config" and i + 1 < len(args):
            try:
                with open(args[i + 1], "rb") as f:
                    if "state-dir" in tomllib.load(f):
                        return True
            except (OSError, tomllib.TOMLDecodeError):
                pass  # start-up fails on it; the fresh dir below stays empty
    return False


def with_state_dir(args: Sequence[str]) -> list[str]:
    """C{args}, plus C{--state-dir} of a fresh directory unless they name one."""
    if _names_state_dir(args):
        return list(args)
    return [*args, "--state-dir", fresh_state_dir()]


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections while the block runs.

    Bound but never listening, so nothing else can take it meanwhile (unlike a
    port that was free a moment ago).
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


class Daemon:
    """The daemon as a child process, read line by line until ready.

    Without C{port} it listens on L{LOOPBACK} and L{port} is read from its log
    once ready; pass C{port} only to come back on a port known from before.
    It is run as users run it, by the C{pistatsd} command (its import finder,
    its reactor), unless C{twistd_args} are given or C{launcher} is False:
    then by C{twistd [twistd_args] pistatsd} (C{-n --pidfile=} by default).
    """

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        port: int | None = None,
        twistd_args: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        launcher: bool | None = None,
    ) -> None:
        self.port = port
        if launcher is None:
            launcher = twistd_args is None
        if launcher:
            command = [LAUNCHER]
        else:
            command = [TWISTD, *(twistd_args or ("-n", "--pidfile=")), "pistatsd"]
        self.argv = [
            *command,
            "--port",
            LOOPBACK if port is None else f"tcp:{port}:interface=127.0.0.1",
            "--heartbeat",
            "0",
            *with_state_dir(args),
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
        if self.port is None:
            self.port = self.bound_port()
        return self

    def bound_port(self, option: str = "port", timeout: float = 30.0) -> int:
        """The TCP port of the first C{--option} listener, as the daemon logged it."""
        while not (ports := bound_ports(self.text(), option)):
            self.wait_for(f"listening on --{option} ", timeout)
        return ports[0]

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
        assert self.port is not None, "not started"
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
    """Run C{twistd ...} to completion (for start-up failures, or to daemonise).

    C{pistatsd} gets a fresh C{--state-dir} unless the arguments name one.
    """
    args = list(args)
    if "pistatsd" in args:
        plugin = args.index("pistatsd") + 1
        args = [*args[:plugin], *with_state_dir(args[plugin:])]
    return subprocess.run(
        [TWISTD, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
