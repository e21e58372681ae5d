"""How the composition root builds the notifiers from C{[notify.NAME]} and C{[smtp]}."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from attrs import frozen
from prometheus_client.registry import Collector
from twisted.application.service import IService
from twisted.internet.defer import Deferred, succeed

from pistatsd.alerts.events import AlertChange
from pistatsd.config import Config
from pistatsd.reactors import IPistatsdReactor


@frozen
class NotifyParts:
    """The notifiers, ready to compose.

    @ivar services: what delivers (retry timers, queues); started with the daemon.
    @ivar listener: told of each alert change; queues the messages it implies.
    @ivar send_test: sends a test message through every notifier; fires with
        C{{notifier name: "sent" or an error text}}.
    @ivar health: C{/health}'s C{"notify"} section.
    @ivar metrics: the C{pistatsd_notify_*} collectors.
    """

    services: tuple[IService, ...]
    listener: Callable[[AlertChange], None]
    send_test: Callable[[], Deferred[Mapping[str, str]]]
    health: Callable[[], Mapping[str, object]]
    metrics: tuple[Collector, ...]


def _ignore(change: AlertChange) -> None:
    """No notifier is configured: a change goes nowhere."""


def notify_parts(config: Config, reactor: IPistatsdReactor) -> NotifyParts:
    """The notifiers the configuration names (none yet)."""
    return NotifyParts(
        services=(),
        listener=_ignore,
        send_test=lambda: succeed({}),
        health=lambda: {"notifiers": {}},
        metrics=(),
    )
