"""systemd integration: readiness, status and the watchdog, over the sd_notify protocol.

The protocol is one datagram of C{KEY=value} lines sent to the C{AF_UNIX}
socket named by C{NOTIFY_SOCKET} (a path, or an abstract-namespace name when
it starts with C{@}).  It is small enough not to need libsystemd: L{Notifier}
sends the datagrams (non-blocking, errors logged once per episode, never
raised), and L{SystemdNotifyService} says C{READY=1} once the reactor runs
(the composition root starts it after the listeners, so ready means
listening), pings C{WATCHDOG=1} every half C{WATCHDOG_USEC} from the
reactor, and says C{STOPPING=1} when it stops.

Socket activation needs nothing here: C{--port systemd:domain=INET:index=0}
adopts the socket systemd passes (Twisted reads C{LISTEN_FDS}, C{LISTEN_PID}
and C{LISTEN_FDNAMES}).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from twisted.application.service import Service
from twisted.logger import Logger

from pistatsd import __version__
from pistatsd.episodes import Episode
from pistatsd.loops import Repeating
from pistatsd.reactors import IPistatsdReactor

_log = Logger()


def notify_address(value: str) -> str | None:
    """The C{AF_UNIX} address for a C{NOTIFY_SOCKET} value, or None if unsupported.

    C{@name} is Linux's abstract namespace (a leading NUL byte); an absolute
    path is a socket file.  Anything else (systemd's C{vsock:} form for
    virtual machines, a relative path) is not supported.
    """
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


class Notifier:
    """Sends sd_notify datagrams to one socket.

    Never blocks and never raises: systemd being slow or gone must not stall
    or crash the daemon.  A failure is logged once, and again only after a
    success has ended the episode (the watchdog pings several times a minute
    for months; a log line each time would fill the journal).

    @ivar failures: datagrams that could not be sent, in all.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self.failures = 0
        self._failing = Episode(
            _log,
            "systemd notification to {address} failed: {error}",
            "systemd notifications to {address} work again ({failures} failed in all)",
        )

    def send(self, message: str) -> bool:
        """Send one notification (C{"READY=1\\nSTATUS=..."}); True if it went out."""
        try:
            with socket.socket(
                socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
            ) as sock:
                sock.sendto(message.encode("utf-8"), self.address)
        except OSError as e:
            self.failures += 1
            self._failing.happened(
                address=self.address.replace("\0", "@"),
                error=e.strerror or str(e),
                message=message,
            )
            return False
        self._failing.ended(address=self.address.replace("\0", "@"), failures=self.failures)
        return True


class SystemdNotifyService(Service):
    """Tells systemd the daemon is ready, alive, and stopping.

    Start it after the listening services.  C{READY=1} goes out once the
    reactor runs: every port accepts connections and the signal handlers are
    in place, so systemd may send C{SIGTERM} at once -- what C{Type=notify}
    units wait for.

    @param reactor: runs the notifications (C{callWhenRunning}) and times
        the watchdog pings.  They come from the reactor's own loop, so a hung
        reactor stops them and systemd restarts the daemon.
    @param watchdog_interval: seconds between C{WATCHDOG=1} pings, or None for
        no watchdog.
    """

    name = "systemd"

    def __init__(
        self,
        notifier: Notifier,
        reactor: IPistatsdReactor,
        *,
        watchdog_interval: float | None = None,
        pid: int | None = None,
        status: str | None = None,
    ) -> None:
        self.notifier = notifier
        self.reactor = reactor
        self.watchdog_interval = watchdog_interval
        self.pid = os.getpid() if pid is None else pid
        self.status = status or f"pistatsd {__version__} serving"
        self._watchdog = Repeating(reactor, self._ping, "systemd watchdog ping")

    def startService(self) -> None:
        super().startService()
        self.reactor.callWhenRunning(self._ready)

    def _ready(self) -> None:
        if not self.running:
            return  # stopped before the reactor ran
        self.notifier.send(f"READY=1\nSTATUS={self.status}\nMAINPID={self.pid}")
        if self.watchdog_interval is not None:
            self._watchdog.start(self.watchdog_interval, now=True)

    def _ping(self) -> None:
        # Notifier.send does not raise; the loop is guarded if it ever does.
        self.notifier.send("WATCHDOG=1")

    def stopService(self) -> None:
        super().stopService()
        if self._watchdog.running:
            self._watchdog.stop()
        self.notifier.send("STOPPING=1\nSTATUS=stopping")


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between watchdog pings: half of C{WATCHDOG_USEC}, or None.

    None when C{WATCHDOG_USEC} is unset or not a positive integer, or when
    C{WATCHDOG_PID} names another process (the watchdog is someone else's).
    """
    usec = environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    owner = environ.get("WATCHDOG_PID")
    if owner:
        try:
            if int(owner) != pid:
                return None
        except ValueError:
            _log.warn("Ignoring WATCHDOG_PID={owner!r}: not a process id", owner=owner)
            return None
    try:
        microseconds = int(usec)
    except ValueError:
        microseconds = 0
    if microseconds <= 0:
        _log.warn("Ignoring WATCHDOG_USEC={usec!r}: not a positive integer", usec=usec)
        return None
    return microseconds / 2 / 1_000_000


def systemd_service(
    reactor: IPistatsdReactor,
    environ: Mapping[str, str] = os.environ,
    *,
    pid: int | None = None,
    status: str | None = None,
) -> Service | None:
    """A service that notifies systemd, or None when not running under systemd.

    @param reactor: runs the notifications and times the watchdog pings.
    @param environ: where C{NOTIFY_SOCKET}, C{WATCHDOG_USEC} and
        C{WATCHDOG_PID} are read.
    @param pid: this process (default: C{os.getpid()}).
    @param status: the C{STATUS=} line C{systemctl status} shows once ready.
    """
    value = environ.get("NOTIFY_SOCKET")
    if not value:
        return None
    address = notify_address(value)
    if address is None:
        _log.warn("Ignoring NOTIFY_SOCKET={value!r}: unsupported address", value=value)
        return None
    if pid is None:
        pid = os.getpid()
    interval = watchdog_interval(environ, pid)
    if interval is None:
        _log.info("systemd: will notify {socket} when ready", socket=value)
    else:
        _log.info(
            "systemd: will notify {socket} when ready, and ping the watchdog every {interval}s",
            socket=value,
            interval=interval,
        )
    return SystemdNotifyService(
        Notifier(address), reactor, watchdog_interval=interval, pid=pid, status=status
    )
