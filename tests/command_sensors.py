"""Command sensors for tests: argv for a child Python, a sensors service on
the real reactor, bounded waits."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.web.resource import Resource

from pistatsd.sensors.commands import CommandRunner
from pistatsd.sensors.confine import Confinement
from pistatsd.sensors.model import CommandSensor
from pistatsd.sensors.resource import MutationGuard, SensorsResource
from pistatsd.sensors.service import SensorsService
from pistatsd.sensors.store import SensorStore
from pistatsd.web.site import PistatsdSite

PY = sys.executable


def python(code: str) -> list[str]:
    """An argv running C{code} in a child Python: no shell anywhere."""
    return [PY, "-c", code]


# Tests on the real reactor are plain pytest-twisted functions: trial's TestCase
# cannot drive the reactor once pytest-twisted's greenlet runs it (child
# processes are then never reaped).  Every wait is bounded by within().


def within(d: Deferred[Any], seconds: float = 15) -> Deferred[Any]:
    """C{d}, failing with a timeout instead of hanging the test run."""
    return d.addTimeout(seconds, reactor)


def make_service(tmp_path: Path, *commands: CommandSensor) -> tuple[SensorsService, CommandRunner]:
    state = str(tmp_path / "state")
    runner = CommandRunner(reactor)
    service = SensorsService(
        clock=reactor,
        confinement=Confinement.of([state]),
        store=SensorStore(state, reactor.seconds),
        commands=commands,
        command_runner=runner,
        interval=3600,
    )
    service.startService()
    return service, runner


def read_only_site(service: SensorsService) -> PistatsdSite:
    api = Resource()
    api.putChild(b"sensors", SensorsResource(service, MutationGuard(None)))
    root = Resource()
    root.putChild(b"api", api)
    return PistatsdSite(root, reactor=Clock())
