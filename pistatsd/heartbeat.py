"""The "daemon task": a periodic log line proving the process is alive and saying how busy it is."""

from __future__ import annotations

from twisted.application.internet import TimerService
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pistatsd.status import DaemonStatus

_log = Logger()


def log_heartbeat(status: DaemonStatus) -> None:
    """Write one heartbeat line; never raises, so the timer never stops."""
    try:
        _log.info(
            "alive: uptime {uptime:.0f}s, {http} HTTP connections, "
            "{ws} WebSocket clients, {requests} requests served",
            uptime=status.uptime(),
            http=status.http_connections(),
            ws=status.websocket_clients(),
            requests=status.requests_total(),
        )
    except Exception:
        _log.failure("heartbeat failed")


def heartbeat_service(status: DaemonStatus, interval: float, clock: IReactorTime) -> TimerService:
    """A service that logs the heartbeat every C{interval} seconds (the first at start-up)."""
    service = TimerService(interval, log_heartbeat, status)
    service.clock = clock
    service.setName("heartbeat")
    return service
