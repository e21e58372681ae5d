"""SIGTERM as an ordinary, successful stop.

twistd re-raises SIGTERM on itself after shutting down, so the process dies
"killed by SIGTERM".  Service managers and scripts that check the exit status
expect a daemon told to stop to stop cleanly with status 0: pistatsd handles
SIGTERM itself, stopping the reactor the same orderly way (every service's
C{stopService} runs), and exits 0.
"""

from __future__ import annotations

import signal
from contextlib import suppress
from types import FrameType

from twisted.internet.error import ReactorNotRunning
from twisted.logger import Logger

from pistatsd.reactors import IPistatsdReactor

_log = Logger()


def stop_cleanly_on_sigterm(reactor: IPistatsdReactor) -> None:
    """Install the handler once the reactor runs (after twistd's own handlers)."""

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        _log.info("Received SIGTERM, shutting down")
        reactor.callFromThread(_stop, reactor)

    reactor.callWhenRunning(signal.signal, signal.SIGTERM, on_sigterm)


def _stop(reactor: IPistatsdReactor) -> None:
    # A second SIGTERM while already stopping is harmless, not an error.
    with suppress(ReactorNotRunning):
        reactor.stop()
