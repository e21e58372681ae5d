"""The reporter's own connection pool against a receiver on 127.0.0.1: real sockets, in process.

The in-memory tests inject a StubTreq client and never touch the pool; this
one runs a report through the pool the service builds for itself, on the
real reactor (pytest-twisted runs it), and checks what that costs in log
lines.  Every connection and the listening port are closed before it ends.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.protocol import Protocol
from twisted.logger import LogEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.web.server import Site

from pistatsd.influx.reporter import InfluxReporter
from pistatsd.influx.writer import InfluxTarget
from tests.influxd import FakeInflux, rendered
from tests.unit.test_influx_reporter import Counting, numbers


class _ClosingSite(Site):
    """A quiet Site that can tell when every connection it accepted has closed."""

    noisy = False

    def __init__(self, resource: FakeInflux) -> None:
        super().__init__(resource)
        self.closed: list[Deferred[None]] = []

    def buildProtocol(self, addr: IPv4Address) -> Protocol | None:
        protocol = super().buildProtocol(addr)
        assert protocol is not None
        closed: Deferred[None] = Deferred()
        self.closed.append(closed)
        lost = protocol.connectionLost

        def connectionLost(reason: Failure) -> None:
            lost(reason)
            closed.callback(None)

        protocol.connectionLost = connectionLost  # type: ignore[method-assign]
        return protocol


@pytest_twisted.inlineCallbacks
def test_a_report_logs_no_factory_lines() -> Generator[Deferred[object], object, None]:
    fake = FakeInflux()
    site = _ClosingSite(fake)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    try:
        reporter = InfluxReporter(
            target=InfluxTarget.build(f"http://127.0.0.1:{port.getHost().port}"),
            clock=reactor,
            points=Counting(per_tick=3),
        )
        reporter.startService()
        # Stopping reports the partial interval, delivers it and closes the pool.
        yield reporter.stopService()
        yield gatherResults(site.closed)
    finally:
        globalLogPublisher.removeObserver(events.append)
        yield port.stopListening()
    assert numbers(fake.written) == [0, 1, 2]
    assert len(site.closed) == 1, "one connection, opened and closed"
    factory_lines = [
        e
        for e in events
        if str(e.get("log_format", "")).startswith(("Starting factory", "Stopping factory"))
    ]
    assert factory_lines == [], rendered(factory_lines)
