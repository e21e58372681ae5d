"""C{watch}: one line per broadcast tick."""

from __future__ import annotations

import json

from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.python.failure import Failure

from pistatsd.client.failures import ClientError, OutputClosed
from pistatsd.client.formatting import format_tick
from pistatsd.client.session import Session, Write
from pistatsd.client.urls import BaseURL
from pistatsd.reactors import IPistatsdReactor


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(value)


class WatchSession(Session):
    """C{watch}: one line per broadcast tick, until C{count} ticks, Ctrl-C (exit 0) or
    the server closes (0 if it closed cleanly, 1 otherwise)."""

    interrupt_code = 0

    def __init__(
        self,
        reactor: IPistatsdReactor,
        base: BaseURL,
        path: str,
        endpoint: IStreamClientEndpoint,
        timeout: float,
        warn: Write,
        *,
        write: Write,
        count: int | None = None,
    ) -> None:
        super().__init__(reactor, base, path, endpoint, timeout, warn)
        self._write = write
        self._count = count
        self._ticks = 0
        self._interval = 0.0

    def on_open(self) -> None:
        self.arm(self.timeout, "the first broadcast")

    def received(self, payload: bytes, is_binary: bool) -> None:
        if self._settled or self._closing:
            return
        try:
            message = json.loads(payload)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            self.fail(ClientError(f"{self.url}: the server sent something other than JSON"))
            return
        kind = message.get("type")
        if kind == "hello":
            self._interval = _seconds(message.get("interval")) or self._interval
        elif kind == "stats":
            try:
                self._write(format_tick(message))
            except OutputClosed:
                self.interrupt()
                return
            self._ticks += 1
            if self._count is not None and self._ticks >= self._count:
                self.close()
                return
        # The next tick is due one interval from now; allow --timeout on top of it.
        self.arm(self.timeout + self._interval, "the next broadcast")

    def server_closed(
        self, was_clean: bool, code: int | None, reason: str | None, lost: Failure | None
    ) -> None:
        if was_clean and code in (1000, 1001):
            detail = f"{code}: {reason}" if reason else f"{code}"
            self.warn(f"the server closed the connection ({detail})")
            self.finish(0)
        else:
            super().server_closed(was_clean, code, reason, lost)
