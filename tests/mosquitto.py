"""A real mosquitto broker for tests: loopback only, a temp config, anonymous, password or TLS.

Each broker runs C{mosquitto -c <temp>/mosquitto.conf} on a loopback port
(picked free the first time, kept across restarts so a daemon pointed at it
finds it again) without persistence, so nothing outlives the test.  What the
broker holds is read with C{mosquitto_sub} (C{mosquitto-clients}).
Every wait polls with a deadline, paced by a process, never sleeps.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Callable
from typing import Any

from tests.influxd import wait_until
from tests.real import require_program


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """One broker in C{root}.

    @param users: user name to password; anonymous clients are refused when given.
    @param tls: (certificate file, key file) for a TLS listener.
    """

    def __init__(
        self,
        root: str,
        *,
        users: dict[str, str] | None = None,
        tls: tuple[str, str] | None = None,
    ) -> None:
        self.binary = require_program("mosquitto")
        self.sub = require_program("mosquitto_sub")
        self.root = root
        self.users = users
        self.tls = tls
        self.port = free_port()
        self.log_path = os.path.join(root, "mosquitto.log")
        self.config = os.path.join(root, "mosquitto.conf")
        self.proc: subprocess.Popen[bytes] | None = None
        self._write_config()

    def _write_config(self) -> None:
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_type all",
            "user root" if os.geteuid() == 0 else "",
        ]
        if self.users is None:
            lines.append("allow_anonymous true")
        else:
            passwords = os.path.join(self.root, "passwords")
            with open(passwords, "w") as f:
                f.write("")
            for user, password in self.users.items():
                subprocess.run(
                    [require_program("mosquitto_passwd"), "-b", passwords, user, password],
                    check=True,
                    capture_output=True,
                    timeout=30,
                )
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        if self.tls is not None:
            lines += [f"certfile {self.tls[0]}", f"keyfile {self.tls[1]}"]
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"mqtts://localhost:{self.port}"
        return f"mqtt://127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def start(self, timeout: float = 30.0) -> Mosquitto:
        """Start and wait until it accepts connections on its port."""
        self.proc = subprocess.Popen(
            [self.binary, "-c", self.config],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        self.wait_until(self._listening, timeout, "mosquitto listening")
        return self

    def _listening(self) -> bool:
        with socket.socket() as s:
            s.settimeout(1.0)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def wait_until(
        self, check: Callable[[], Any], timeout: float, what: str, pace: Any = None
    ) -> Any:
        """Poll C{check()} until truthy; paced by C{pace} (a process) or the broker."""
        process = pace if pace is not None else self.proc
        assert process is not None
        return wait_until(check, timeout, what, pace=process, step=0.2, details=self.log)

    def retained(
        self,
        topic_filter: str = "#",
        *,
        user: tuple[str, str] | None = None,
        cafile: str | None = None,
        seconds: int = 1,
    ) -> dict[str, bytes]:
        """The retained messages the broker holds under C{topic_filter} (topic: payload)."""
        argv = [
            self.sub,
            "-h",
            "localhost" if self.tls is not None else "127.0.0.1",
            "-p",
            str(self.port),
            "-t",
            topic_filter,
            "--retained-only",
            "-W",
            str(seconds),
            "-F",
            "%t\t%x",
        ]
        if user is not None:
            argv += ["-u", user[0], "-P", user[1]]
        if cafile is not None:
            argv += ["--cafile", cafile]
        done = subprocess.run(argv, capture_output=True, timeout=seconds + 30)
        held: dict[str, bytes] = {}
        for line in done.stdout.decode("utf-8").splitlines():
            topic, _, hexed = line.partition("\t")
            held[topic] = bytes.fromhex(hexed)
        return held
