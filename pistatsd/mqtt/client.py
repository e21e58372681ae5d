"""One MQTT session with the broker, over twisted-mqtt: the only module that imports it.

twisted-mqtt speaks MQTT 3.1.1 on the reactor (no thread), with TLS from the
endpoint, a last will, keepalive pings, QoS 0-2 and retained messages.  It
needs a few things done around it, all here:

 - its protocol schedules retries and timeouts on the global reactor
   (a class attribute): each protocol gets the injected clock instead;
 - it logs two debug lines per message: only its warnings are kept;
 - its factory keeps unsent messages per address across connections and
   would replay them, stale, on the next one: every connection starts empty
   (the session is clean anyway);
 - a connection closed before the broker's CONNACK leaves the connect
   Deferred waiting for the library's own timer: it fails at once here;
 - payloads must be C{bytearray} (C{bytes} are refused) and passwords are
   sent as ASCII (others are refused at start-up by
   L{pistatsd.mqtt.settings.check_mqtt}).

Reconnecting is not its job (L{pistatsd.mqtt.link} does it, with backoff and
one log line per episode), so its C{ReconnectingClientFactory} side is unused.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import mqtt.client.base
import mqtt.client.factory
import mqtt.client.publisher
import mqtt.client.pubsubs
from attrs import frozen
from mqtt import v311
from mqtt.client.factory import MQTTFactory
from mqtt.client.pubsubs import MQTTProtocol
from mqtt.error import MQTTStateError
from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.task import LoopingCall
from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
)
from twisted.python.failure import Failure

from pistatsd.mqtt.link import LoginRefused
from pistatsd.mqtt.settings import Broker
from pistatsd.reactors import IPistatsdReactor

#: Seconds between keepalive pings; the broker sends the last will after 1.5 times it.
KEEPALIVE = 30
#: Seconds to wait for the TCP (and TLS) connection, then for the broker's CONNACK.
CONNECT_TIMEOUT = 10.0

# The library logs two debug lines per message sent; keep its warnings and errors only.
_quiet = FilteringLogObserver(
    globalLogPublisher, [LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)]
)
for _module in (mqtt.client.base, mqtt.client.factory, mqtt.client.publisher, mqtt.client.pubsubs):
    _module.log = Logger(namespace="mqtt", observer=_quiet)

#: CONNACK return codes that mean the credentials are wrong (MQTT 3.1.1, 3.2.2.3).
_LOGIN_CODES = {4: "bad user name or password", 5: "not authorized"}


@frozen
class Login:
    """Who this client is and what it leaves behind: the CONNECT packet's contents."""

    client_id: str
    will_topic: str
    will_message: str
    user: str | None = None
    password: str | None = None


def broker_endpoint(
    reactor: IPistatsdReactor, broker: Broker, cafile: str | None = None
) -> IStreamClientEndpoint:
    """TCP, or TLS checking the broker's certificate and name (system CAs or C{cafile}).

    @raise OSError: the CA file cannot be read.
    @raise ValueError: it holds no usable certificate.
    """
    endpoint: IStreamClientEndpoint = HostnameEndpoint(
        reactor, broker.host, broker.port, timeout=CONNECT_TIMEOUT
    )
    if not broker.tls:
        return endpoint
    # pyOpenSSL only for an mqtts:// broker (pistatsd.footprint).
    from twisted.internet.ssl import optionsForClientTLS

    from pistatsd.pem import load_certificates, trust_root

    if cafile is not None:
        with open(cafile, "rb") as f:
            trust = trust_root(load_certificates(f.read()))
        options = optionsForClientTLS(broker.host, trustRoot=trust)
    else:
        options = optionsForClientTLS(broker.host)
    return wrapClientTLS(options, endpoint)


class _Protocol(MQTTProtocol):
    """twisted-mqtt's client (publisher and subscriber) on the injected clock,
    telling its session when it is lost."""

    def __init__(self, factory: MQTTFactory, addr: object, clock: IReactorTime) -> None:
        super().__init__(factory, addr)
        self.callLater = clock.callLater
        self.clock = clock
        self.lost: Deferred[None] = Deferred()

    def connectionLost(self, reason: Failure) -> None:
        request = getattr(self, "connReq", None)
        super().connectionLost(reason)
        if request is not None:
            # Lost before CONNACK: fail the connect now, not at the library's timer.
            if request.alarm is not None and request.alarm.active():
                request.alarm.cancel()
            if request.deferred is not None and not request.deferred.called:
                request.deferred.errback(reason)
            self.connReq = None
        # Messages still queued behind the window were never sent: fail them now
        # (the library would keep them for the next connection).
        queued = self.factory.queuePublishTx.get(self.addr) or ()
        while queued:
            unsent = queued.popleft()
            if unsent.deferred is not None and not unsent.deferred.called:
                unsent.deferred.errback(reason)
        if not self.lost.called:
            self.lost.callback(None)

    def use_clock_for_pings(self) -> None:
        """Move the keepalive loop (started on the global reactor) onto the injected clock."""
        ping = self._pingReq
        if ping.timer is not None:
            ping.timer.stop()
            timer = LoopingCall(self.ping)
            timer.clock = self.clock
            timer.start(ping.keepalive, now=False)
            ping.timer = timer


class _Factory(MQTTFactory):
    """Builds L{_Protocol}s, each with empty queues: nothing stale crosses connections."""

    noisy = False

    def __init__(self, clock: IReactorTime) -> None:
        super().__init__(profile=MQTTFactory.PUBLISHER | MQTTFactory.SUBSCRIBER)
        self._clock = clock

    def buildProtocol(self, addr: object) -> _Protocol:
        self.queuePublishTx.clear()
        self.queuePublishTx[addr] = deque()
        for queues in (
            self.windowPublish,
            self.windowPubRelease,
            self.windowPubRx,
            self.windowSubscribe,
            self.windowUnsubscribe,
        ):
            queues.clear()
            queues[addr] = {}
        self.protocol = _Protocol(self, addr, self._clock)
        return self.protocol


class MQTTSession:
    """One connected, logged-in session: publish, and say goodbye.

    @ivar lost: fires (with None) when the connection is gone, for whatever reason.
    """

    def __init__(self, protocol: _Protocol) -> None:
        self._protocol = protocol
        self.lost = protocol.lost

    def publish(
        self, topic: str, payload: bytes, *, retain: bool, qos: int = 1
    ) -> Deferred[object]:
        """Send one message; the Deferred fires once the broker acknowledged it (QoS 1)."""
        return self._protocol.publish(topic, bytearray(payload), qos=qos, retain=retain)

    def subscribe(
        self, topic_filter: str, receive: Callable[[str, bytes, bool], None]
    ) -> Deferred[object]:
        """Receive C{(topic, payload, retained)} of messages matching C{topic_filter} (QoS 0)."""

        def deliver(
            topic: str, payload: bytearray, qos: int, dup: bool, retain: bool, msg_id: object
        ) -> None:
            receive(topic, bytes(payload), bool(retain))

        self._protocol.onPublish = deliver
        return self._protocol.subscribe(topic_filter, qos=0)

    def close(self) -> None:
        """DISCONNECT (so the broker drops the last will) and close the connection."""
        try:
            self._protocol.disconnect()
        except MQTTStateError:
            self._protocol.transport.loseConnection()

    def abort(self) -> None:
        """Drop the connection without a word (the last will is then published)."""
        self._protocol.transport.abortConnection()


class Connector:
    """Opens sessions: connect, send CONNECT, wait for CONNACK, all bounded in time."""

    def __init__(self, clock: IReactorTime, endpoint: IStreamClientEndpoint, login: Login) -> None:
        self._clock = clock
        self._endpoint = endpoint
        self._login = login
        self._factory = _Factory(clock)

    def connect(self) -> Deferred[MQTTSession]:
        """A logged-in session, or a failure (L{LoginRefused} for wrong credentials)."""
        connecting: Deferred[Any] = self._endpoint.connect(self._factory)
        connecting.addTimeout(CONNECT_TIMEOUT, self._clock)
        return connecting.addCallback(self._login_on)

    def _login_on(self, protocol: _Protocol) -> Deferred[MQTTSession]:
        login = self._login
        answered: Deferred[object] = protocol.connect(
            login.client_id,
            keepalive=KEEPALIVE,
            willTopic=login.will_topic,
            willMessage=login.will_message,
            willQoS=1,
            willRetain=True,
            username=login.user,
            password=login.password,
            cleanStart=True,
            version=v311,
        )
        answered.addTimeout(CONNECT_TIMEOUT, self._clock)

        def logged_in(_: object) -> MQTTSession:
            protocol.use_clock_for_pings()
            return MQTTSession(protocol)

        def refused(reason: Failure) -> Failure:
            if protocol.transport is not None and protocol.connected:
                protocol.transport.abortConnection()
            args = reason.value.args if reason.value is not None else ()
            if reason.check(MQTTStateError) and args:
                if args[0] in _LOGIN_CODES:
                    return Failure(LoginRefused(_LOGIN_CODES[args[0]]))
                return Failure(ConnectionRefusedError(f"refused: {args[-1]}"))
            if reason.check(TimeoutError):
                return Failure(TimeoutError("no CONNACK from the broker in time"))
            return reason

        return answered.addCallbacks(logged_in, refused)
