"""How the composition root builds the notifiers from C{[notify.NAME]} and C{[smtp]}.

The HTTP and SMTP senders are imported here, and only when a notifier of
their kind is configured: a daemon without notifiers loads neither treq
(for notifications) nor C{twisted.mail}.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from attrs import frozen
from twisted.application.service import IService
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from pistatsd.alerts.events import AlertChange
from pistatsd.config import Config
from pistatsd.notify.settings import NotifierSettings, NotifySettings, parse_settings
from pistatsd.reactors import IPistatsdReactor

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

    from pistatsd.notify.delivery import Sender
    from pistatsd.notify.redact import Scrubber

_log = Logger()

#: Extra seconds an attempt may take beyond its sender's own timeout.
DEADLINE_MARGIN = 5.0


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


def _no_notifiers() -> Mapping[str, object]:
    return {"notifiers": {}}


def _sender(
    notifier: NotifierSettings,
    settings: NotifySettings,
    reactor: IPistatsdReactor,
    wall: Callable[[], float],
    scrub: Scrubber,
    helo: str,
) -> tuple[Sender, float]:
    """The sender of one notifier, and the seconds one of its attempts may take."""
    if notifier.kind == "email":
        from pistatsd.notify.smtp import SMTPSender, tls_creator

        assert settings.smtp is not None
        smtp = settings.smtp
        sender = SMTPSender(notifier, smtp, reactor, wall, scrub, tls_creator(smtp), helo)
        # Connecting, then each reply of the session, may take the whole timeout.
        return sender, 3 * smtp.timeout + DEADLINE_MARGIN
    from pistatsd.notify.http import HTTPSender

    http = HTTPSender(notifier, reactor, wall, scrub)
    return http, 3 * http.timeout + DEADLINE_MARGIN


def _warn_cleartext(notifier: NotifierSettings) -> None:
    """One start-up line when a token or password would cross the network unencrypted."""
    parts = urlsplit(notifier.target)
    credentials = notifier.token is not None or parts.username is not None
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme == "http" and credentials and not loopback:
        _log.warn(
            "notifier {notifier}: its credentials are sent unencrypted (an http:// URL)",
            notifier=notifier.name,
        )


def notify_parts(
    config: Config,
    reactor: IPistatsdReactor,
    environ: Mapping[str, str] = os.environ,
    wall: Callable[[], float] = time.time,
) -> NotifyParts:
    """The notifiers the configuration names; inert parts when it names none.

    @param environ: where C{PISTATSD_NTFY_TOKEN} and C{PISTATSD_SMTP_PASSWORD} are read.
    @param wall: the wall clock that dates messages.
    @raise StartupError: a C{[notify.NAME]} or C{[smtp]} table is unusable.
    """
    settings = parse_settings(config.extra, environ)
    if not settings.notifiers:
        return NotifyParts(
            services=(),
            listener=_ignore,
            send_test=lambda: succeed({}),
            health=_no_notifiers,
            metrics=(),
        )
    # Delivering is loaded only when something is to be delivered.
    from pistatsd.notify.delivery import Delivery
    from pistatsd.notify.metrics import NotifyMetrics
    from pistatsd.notify.redact import Scrubber, password_secrets, url_secrets
    from pistatsd.notify.router import Route, Router
    from pistatsd.notify.service import NotifyService

    host = socket.gethostname()
    smtp = settings.smtp
    smtp_secrets = password_secrets(smtp.user, smtp.password) if smtp is not None else ()
    deliveries = []
    routes = []
    for notifier in settings.notifiers:
        secrets = [notifier.token, *smtp_secrets]
        if notifier.kind != "email":
            secrets += url_secrets(notifier.target)
            _warn_cleartext(notifier)
        scrub = Scrubber(secrets)
        sender, deadline = _sender(notifier, settings, reactor, wall, scrub, host)
        delivery = Delivery(notifier.name, sender, reactor, deadline=deadline, scrub=scrub)
        deliveries.append(delivery)
        routes.append(Route(notifier, delivery.put))
    router = Router(routes, reactor, host)
    service = NotifyService(deliveries, router, wall, host)
    return NotifyParts(
        services=(service,),
        listener=router,
        send_test=service.send_test,
        health=service.health,
        metrics=(NotifyMetrics(deliveries),),
    )
