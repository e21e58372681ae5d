"""Shared by the notification tests on the real reactor: an alert change, a free port, a wait."""

from __future__ import annotations

import socket
from collections.abc import Callable, Generator

import pytest_twisted
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred

from pistatsd.alerts.events import AlertChange

FIRING = AlertChange(
    name="filesystem-full:/boot",
    series="filesystems./boot.percent",
    state="firing",
    previous="pending",
    time=1764590460.0,
    value=93.1,
    severity="critical",
)


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on (for "down, then up")."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventually(check: Callable[[], object], timeout: float, what: str) -> Deferred[None]:
    """Fires once C{check()} is true; fails after C{timeout} seconds of the real clock."""

    @pytest_twisted.inlineCallbacks
    def poll() -> Generator[Deferred[object], object, None]:
        deadline = reactor.seconds() + timeout
        while not check():
            if reactor.seconds() > deadline:
                raise AssertionError(f"not within {timeout} s: {what}")
            yield task.deferLater(reactor, 0.05, lambda: None)

    return poll()
