"""Builds MQTT publishing from the configuration: the one place that reads L{Config} for it.

Without C{--mqtt} nothing is built and the MQTT library is not imported;
C{/health} still has its C{"mqtt"} section, in the "off" shape.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from attrs import frozen
from twisted.application.service import IService

from pistatsd.alerts.events import CurrentAlerts, no_alerts
from pistatsd.config import Config
from pistatsd.errors import StartupError
from pistatsd.jsontypes import JSONMapping, JSONObject
from pistatsd.metrics import MQTTMetrics
from pistatsd.reactors import IPistatsdReactor
from pistatsd.status import mqtt_off

if TYPE_CHECKING:
    from pistatsd.mqtt.discovery import Topics
    from pistatsd.mqtt.link import BrokerLink
    from pistatsd.mqtt.publisher import StatePublisher
    from pistatsd.mqtt.settings import Broker
    from pistatsd.sampler import Sampler


@frozen
class MQTTHealth:
    """C{/health}'s C{"mqtt"}: the link's and the publisher's state, with what is configured."""

    broker: Broker
    topics: Topics
    discovery: bool
    link: BrokerLink
    publisher: StatePublisher

    def __call__(self) -> JSONObject:
        return {
            "enabled": True,
            "broker": str(self.broker),
            "tls": self.broker.tls,
            "state_topic": self.topics.state,
            "discovery": self.discovery,
            **self.link.state(),
            **self.publisher.state(),
        }


@frozen
class MQTTParts:
    """MQTT publishing, ready to compose.

    @ivar services: the publisher, then the link (so the link, stopped
        first, says C{offline} while the publisher still exists).
    """

    services: tuple[IService, ...]
    health: Callable[[], JSONMapping]
    metrics: MQTTMetrics


def mqtt_parts(
    config: Config,
    reactor: IPistatsdReactor,
    *,
    sampler: Sampler,
    alerts: CurrentAlerts = no_alerts,
    hostname: Callable[[], str] = socket.gethostname,
) -> MQTTParts:
    """The publisher and its broker link for C{--mqtt}, or nothing; the health either way."""
    if config.mqtt is None:
        return MQTTParts(services=(), health=mqtt_off, metrics=MQTTMetrics(mqtt_off))
    # Imported only now: a daemon without --mqtt never loads the MQTT library.
    from pistatsd.mqtt.client import Connector, Login, broker_endpoint
    from pistatsd.mqtt.device import this_device
    from pistatsd.mqtt.discovery import Topics
    from pistatsd.mqtt.link import OFFLINE, BrokerLink
    from pistatsd.mqtt.publisher import StatePublisher
    from pistatsd.mqtt.settings import default_prefix, parse_broker_url

    broker = parse_broker_url(config.mqtt)
    prefix = config.mqtt_prefix or default_prefix(hostname())
    topics = Topics(prefix=prefix, discovery=config.mqtt_discovery_prefix)
    device = this_device(
        ports=config.port, tls=config.tls, dashboard=config.mqtt_dashboard_url, hostname=hostname
    )
    try:
        endpoint = broker_endpoint(reactor, broker, config.mqtt_cafile)
    except OSError as e:
        raise StartupError(
            f"--mqtt-cafile {config.mqtt_cafile}: cannot read it: {e.strerror}"
        ) from None
    except ValueError as e:
        raise StartupError(f"--mqtt-cafile {config.mqtt_cafile}: {e}") from None
    client_id = "pistatsd-" + hashlib.sha256(f"{device.node}|{prefix}".encode()).hexdigest()[:12]
    login = Login(
        client_id=client_id,
        will_topic=topics.availability,
        will_message=OFFLINE.decode(),
        user=config.mqtt_user,
        password=config.mqtt_password,
    )
    publisher = StatePublisher(
        clock=reactor,
        interval=config.mqtt_interval,
        topics=topics,
        device=device if topics.discovery else None,
        snapshot=lambda: sampler.latest,
        alerts=alerts,
        broker=str(broker),
    )
    link = BrokerLink(
        clock=reactor,
        connect=Connector(reactor, endpoint, login).connect,  # type: ignore[arg-type]
        broker=str(broker),
        availability=topics.availability,
        listener=publisher,
    )
    health = MQTTHealth(
        broker=broker,
        topics=topics,
        discovery=bool(topics.discovery),
        link=link,
        publisher=publisher,
    )
    return MQTTParts(services=(publisher, link), health=health, metrics=MQTTMetrics(health))
