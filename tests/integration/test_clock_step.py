"""The real daemon under a wall clock stepped back an hour, then forward a day.

libfaketime (Debian package C{libfaketime}) is preloaded into twistd: it fakes
the wall clock (C{CLOCK_REALTIME}, C{time.time}) by the offset written in a
file, re-read on every call, and leaves the monotonic clock alone.  Writing
the file steps the daemon's wall clock as C{date -s} or NTP would.  Through
each step the test watches, at once (one C{select} loop, no sleeping): the
heartbeat lines on the daemon's output, the C{WATCHDOG=1} datagrams on a
stand-in for systemd's notify socket, the ticks on C{/ws/broadcast}, and the
sampler's history on C{/stats/history}.  Every one must keep its normal
rate -- neither stop (a step back) nor burst (a step forward) -- while the
data timestamps follow the faked wall clock.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from tests.daemon import LOOPBACK, PROJECT, Daemon
from tests.integration.test_systemd import short_dir
from tests.real import require_library

pytestmark = pytest.mark.real

HOUR = 3600
DAY = 86400
SAMPLE = 0.2  # --sample-interval and --broadcast-interval
HEARTBEAT = 1.0  # --heartbeat
WATCHDOG = 0.5  # half of WATCHDOG_USEC=1000000
WINDOW = 3.0  # seconds each rate is measured over


class LoopbackWebSocket:
    """A C{websockets} sans-I/O client on a plain socket, so C{select} can watch it."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setblocking(False)
        self.ws = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}{path}"), max_size=None)
        self.ws.send_request(self.ws.connect())
        self._flush()

    def fileno(self) -> int:
        return self.sock.fileno()

    def _flush(self) -> None:
        data = b"".join(self.ws.data_to_send())
        if data:
            self.sock.setblocking(True)
            self.sock.sendall(data)
            self.sock.setblocking(False)

    def read(self) -> list[dict]:
        """The text messages that arrived (JSON-decoded); answers pings."""
        data = self.sock.recv(1 << 20)
        if not data:
            raise AssertionError("the daemon closed /ws/broadcast")
        self.ws.receive_data(data)
        messages = [
            json.loads(event.data)
            for event in self.ws.events_received()
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT
        ]
        self._flush()
        return messages

    def close(self) -> None:
        self.sock.close()


class Watch:
    """Everything the daemon emits, read as it arrives, with the time it arrived."""

    def __init__(self, daemon: Daemon, notify: socket.socket, ws: LoopbackWebSocket) -> None:
        self.daemon = daemon
        self.notify = notify
        self.ws = ws
        self.heartbeats: list[float] = []
        self.pings: list[float] = []
        self.ticks: list[tuple[float, dict]] = []
        self._pending = b""

    def until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Read until C{done()} holds; fail with what was seen after C{timeout}."""
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{what} within {timeout}s\n{self.summary()}")
            self._read(remaining)

    def during(self, seconds: float) -> None:
        """Read for C{seconds} of real time."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self._read(remaining)

    def _read(self, timeout: float) -> None:
        assert self.daemon.proc is not None and self.daemon.proc.stdout is not None
        out = self.daemon.proc.stdout.fileno()
        readable, _, _ = select.select([out, self.notify, self.ws], [], [], timeout)
        now = time.monotonic()
        if out in readable:
            chunk = os.read(out, 65536)
            if not chunk:
                raise AssertionError(f"daemon exited ({self.daemon.proc.wait()})\n{self.summary()}")
            self._pending += chunk
            *lines, self._pending = self._pending.split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", "replace")
                self.daemon.output.append(line + "\n")
                if "alive: uptime" in line:
                    self.heartbeats.append(now)
        if self.notify in readable and self.notify.recv(4096) == b"WATCHDOG=1":
            self.pings.append(now)
        if self.ws in readable:
            self.ticks += [(now, m) for m in self.ws.read() if m.get("type") == "stats"]

    def summary(self) -> str:
        return (
            f"{len(self.heartbeats)} heartbeats, {len(self.pings)} watchdog pings, "
            f"{len(self.ticks)} broadcast ticks; output:\n{self.daemon.text()}"
        )


def since(times: list[float], start: float) -> int:
    return sum(1 for t in times if t >= start)


OPTIONS = {
    "state-dir": None,  # the test's own
    "heartbeat": HEARTBEAT,
    "sample-interval": SAMPLE,
    "broadcast-interval": SAMPLE,
}


@contextmanager
def faked_daemon(tmp_path, how: str) -> Iterator[tuple[Daemon, Watch, Callable[[int], None]]]:
    """The daemon under libfaketime and a notify socket; yields it, its watch and C{set_offset}.

    @param how: C{"plugin"} (C{twistd pistatsd --option ...}) or C{"tac"}
        (C{twistd -y etc/pistatsd.tac} with the same options in a TOML file).
    """
    library = require_library("libfaketime", "libfaketime.so.1")
    offset_file = tmp_path / "faketime"

    def set_offset(seconds: int) -> None:
        # Written whole and renamed, so the daemon never reads a half-written offset.
        tmp = tmp_path / "faketime.tmp"
        tmp.write_text(f"{seconds:+d}\n")
        os.replace(tmp, offset_file)

    set_offset(0)
    directory = short_dir()
    notify_path = os.path.join(directory, "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    options = dict(OPTIONS, **{"state-dir": str(tmp_path / "state")})
    env = {
        "LD_PRELOAD": library,
        "FAKETIME_TIMESTAMP_FILE": str(offset_file),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "NOTIFY_SOCKET": notify_path,
        "WATCHDOG_USEC": "1000000",
    }
    if how == "plugin":
        daemon = Daemon(
            [word for item in options.items() for word in (f"--{item[0]}", str(item[1]))], env=env
        )
    else:
        daemon = Daemon(
            twistd_args=("-n", "--pidfile=", "-y", os.path.join(PROJECT, "etc", "pistatsd.tac")),
            env=dict(env, PISTATSD_CONFIG=str(tmp_path / "pistatsd.toml")),
        )
        daemon.argv = daemon.argv[: daemon.argv.index("pistatsd")]
        options["port"] = [LOOPBACK]
        (tmp_path / "pistatsd.toml").write_text(
            "".join(f"{key} = {json.dumps(value)}\n" for key, value in options.items())
        )
    ws: LoopbackWebSocket | None = None
    try:
        daemon.start()
        ws = LoopbackWebSocket(daemon.port, "/ws/broadcast")
        yield daemon, Watch(daemon, notify, ws), set_offset
        assert daemon.stop() == 0
        assert "Traceback" not in daemon.text()
    finally:
        if ws is not None:
            ws.close()
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()
        notify.close()
        shutil.rmtree(directory, True)


def history_length(daemon: Daemon) -> int:
    status, _, body = daemon.get("/stats/history")
    assert status == 200, body
    return len(json.loads(body)["snapshots"])


def assert_normal_rates(watch: Watch, daemon: Daemon, offset: int, phase: str) -> None:
    """Over one window: every timer ran at its rate, and the dates follow the wall clock."""
    samples_before = history_length(daemon)
    start = time.monotonic()
    watch.during(WINDOW)
    elapsed = time.monotonic() - start
    samples = history_length(daemon) - samples_before
    rates = {
        "samples": (samples, elapsed / SAMPLE),
        "broadcast ticks": (since([t for t, _ in watch.ticks], start), elapsed / SAMPLE),
        "heartbeats": (since(watch.heartbeats, start), elapsed / HEARTBEAT),
        "watchdog pings": (since(watch.pings, start), elapsed / WATCHDOG),
    }
    for name, (count, expected) in rates.items():
        # Not stopped, not a burst: within a generous band of the normal rate
        # (a loaded machine delays timers; it never multiplies them).
        assert expected * 0.5 - 1 <= count <= expected * 1.5 + 1, (
            f"{phase}: {count} {name} in {elapsed:.1f}s, expected about {expected:.0f}\n"
            + watch.summary()
        )
    wall = time.time() + offset
    _, _, body = daemon.get("/stats")
    stamp = json.loads(body)["timestamp"]
    assert abs(stamp - wall) < 2, f"{phase}: /stats timestamp {stamp}, wall clock {wall}"
    sent = watch.ticks[-1][1]["sent"]
    assert abs(sent - wall) < 2, f"{phase}: broadcast sent {sent}, wall clock {wall}"


@pytest.mark.parametrize("how", ["plugin", "tac"])
def test_timers_survive_wall_clock_steps(tmp_path, how):
    with faked_daemon(tmp_path, how) as (daemon, watch, set_offset):
        watch.until(lambda: watch.ticks and watch.pings, 10, "no broadcast tick or watchdog ping")
        assert_normal_rates(watch, daemon, 0, "before any step")

        set_offset(-HOUR)
        before = (len(watch.heartbeats), len(watch.pings), len(watch.ticks))
        watch.until(
            lambda: (
                len(watch.heartbeats) >= before[0] + 2
                and len(watch.pings) >= before[1] + 2
                and len(watch.ticks) >= before[2] + 2
            ),
            5,
            "after a step back of an hour: heartbeats, watchdog pings or ticks stopped",
        )
        assert_normal_rates(watch, daemon, -HOUR, "after a step back of an hour")

        set_offset(-HOUR + DAY)
        assert_normal_rates(watch, daemon, -HOUR + DAY, "after a step forward of a day")
