"""Daemon mode as deployed without systemd: pidfile, logfile rotation and reopening, TLS.

C{twistd pistatsd ...} without C{-n} forks into the background: these tests
find the daemon by its pidfile and watch its logfile.  Waits are bounded
polls: each one waits for the daemon to exit, for at most a few
milliseconds, so a daemon that dies is noticed at once.
"""

from __future__ import annotations

import os
import signal
import ssl
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from tests.daemon import LOOPBACK, READY_MARK, bound_ports, run_twistd

#: twistd's default rotateLength for --logfile.
ROTATE_LENGTH = 1_000_000


class Daemonised:
    """A C{twistd pistatsd} daemon started in the background."""

    def __init__(self, directory: Path, *args: str) -> None:
        self.pidfile = directory / "p.pid"
        self.logfile = directory / "p.log"
        result = run_twistd(
            [
                "--pidfile",
                str(self.pidfile),
                "--logfile",
                str(self.logfile),
                "pistatsd",
                "--port",
                LOOPBACK,
                *args,
            ]
        )
        assert result.returncode == 0, result.stdout + result.stderr
        # Bound (and logged) before twistd's parent returned.
        self.port = bound_ports(self.log())[0]
        self.process = psutil.Process(int(self.pidfile.read_text()))

    def log(self, path: Path | None = None) -> str:
        path = path or self.logfile
        return path.read_text() if path.exists() else ""

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
        """Poll C{condition}; fail if the daemon exits or C{timeout} passes first."""
        for _ in range(int(timeout / 0.02)):
            if condition():
                return
            try:
                code = self.process.wait(timeout=0.02)
            except psutil.TimeoutExpired:
                continue
            raise AssertionError(f"daemon exited ({code}) before {what}:\n{self.log()}")
        raise AssertionError(f"no {what} within {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM; the daemon must be gone within 10 s, its pidfile removed."""
        if self.process.is_running():
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)
        assert not self.pidfile.exists()


@pytest.fixture
def daemonise(tmp_path) -> Iterator[Callable[..., Daemonised]]:
    started: list[Daemonised] = []

    def start(*args: str) -> Daemonised:
        d = Daemonised(tmp_path, *args)
        started.append(d)
        return d

    yield start
    for d in started:
        if d.process.is_running():
            d.process.kill()


def test_sigusr1_rotates_the_logfile(daemonise, tmp_path):
    """twistd's convention: SIGUSR1 renames p.log to p.log.1 and starts a fresh p.log."""
    d = daemonise("--heartbeat", "0.05")
    d.wait_until(lambda: READY_MARK in d.log(), "ready line")
    d.process.send_signal(signal.SIGUSR1)
    rotated = tmp_path / "p.log.1"
    d.wait_until(rotated.exists, "p.log.1")
    d.wait_until(lambda: "alive:" in d.log(), "a heartbeat in the new p.log")
    assert READY_MARK in d.log(rotated)
    assert READY_MARK not in d.log()
    d.stop()
    assert "Server Shut Down" in d.log()
    assert "Server Shut Down" not in d.log(rotated)
    assert "Traceback" not in d.log() + d.log(rotated)


def test_logfile_rotates_at_one_megabyte(daemonise, tmp_path):
    """A full p.log is rotated before the next line is written: it never grows past 1 MB."""
    filler = "old line from an earlier run\n"
    (tmp_path / "p.log").write_text(filler * (ROTATE_LENGTH // len(filler) + 1))
    d = daemonise()
    d.wait_until(lambda: READY_MARK in d.log(), "ready line in a fresh p.log")
    assert filler not in d.log()
    assert d.log(tmp_path / "p.log.1").startswith(filler)
    assert os.path.getsize(d.logfile) < ROTATE_LENGTH
    d.stop()


def test_daemon_mode_serves_https_with_a_generated_certificate(daemonise, tmp_path):
    state = tmp_path / "state"
    d = daemonise("--tls", "ssl:0:interface=127.0.0.1", "--state-dir", str(state))
    d.wait_until(lambda: READY_MARK in d.log(), "ready line")
    [tls_port] = bound_ports(d.log(), "tls")
    assert "SHA-256 fingerprint" in d.log()
    context = ssl.create_default_context(cafile=str(state / "tls" / "cert.pem"))
    with urllib.request.urlopen(
        f"https://localhost:{tls_port}/sum?a=1&b=2", context=context, timeout=10
    ) as response:
        assert response.read() == b"Sum: 3"
    d.stop()
    assert "Server Shut Down" in d.log()


def test_daemon_mode_tls_error_reaches_the_terminal(tmp_path):
    """A bad --cert stops start-up before forking: one line on the terminal, no pidfile."""
    pidfile = tmp_path / "p.pid"
    result = run_twistd(
        [
            "--pidfile",
            str(pidfile),
            "--logfile",
            str(tmp_path / "p.log"),
            "pistatsd",
            "--port",
            LOOPBACK,
            "--tls",
            "ssl:0:interface=127.0.0.1",
            "--cert",
            str(tmp_path / "missing.pem"),
        ]
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"cannot read key {tmp_path / 'missing.pem'}: No such file or directory" in output
    assert "Traceback" not in output
    assert not pidfile.exists()
