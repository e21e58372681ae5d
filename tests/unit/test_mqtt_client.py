"""The twisted-mqtt session, in memory: CONNECT, CONNACK, PUBLISH, PUBACK as bytes."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, TimeoutError, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from pistatsd.mqtt.client import CONNECT_TIMEOUT, KEEPALIVE, Connector, Login
from pistatsd.mqtt.link import LoginRefused

LOGIN = Login(
    client_id="pistatsd-test",
    will_topic="pistatsd/pi/availability",
    will_message="offline",
    user="pi",
    password="pw",
)


def connack(code: int) -> bytes:
    return bytes([0x20, 0x02, 0x00, code])


@implementer(IStreamClientEndpoint)
class MemoryEndpoint:
    """Connects each protocol to a fresh L{StringTransport}."""

    def __init__(self) -> None:
        self.transports: list[StringTransport] = []
        self.protocols: list[Any] = []

    def connect(self, factory: IProtocolFactory) -> Deferred[Any]:
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.transports.append(transport)
        self.protocols.append(protocol)
        return succeed(protocol)


class ConnectorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.endpoint = MemoryEndpoint()
        self.connector = Connector(self.clock, self.endpoint, LOGIN)

    def connected(self) -> tuple[Any, StringTransport, Any]:
        d = self.connector.connect()
        transport = self.endpoint.transports[-1]
        protocol = self.endpoint.protocols[-1]
        protocol.dataReceived(connack(0))
        session = self.successResultOf(d)
        transport.clear()
        return session, transport, protocol

    def test_connect_carries_the_will_keepalive_and_login(self) -> None:
        d = self.connector.connect()
        sent = self.endpoint.transports[0].value()
        self.assertEqual(sent[0], 0x10)  # CONNECT
        self.assertIn(b"MQTT\x04", sent)  # 3.1.1
        flags = sent[sent.index(b"MQTT\x04") + 5]
        self.assertEqual(flags & 0x04, 0x04, "will flag")
        self.assertEqual(flags & 0x20, 0x20, "will retained")
        self.assertEqual((flags >> 3) & 0x03, 1, "will QoS 1")
        self.assertEqual(flags & 0xC0, 0xC0, "user name and password")
        self.assertEqual(flags & 0x02, 0x02, "clean session")
        keepalive = sent[sent.index(b"MQTT\x04") + 6 : sent.index(b"MQTT\x04") + 8]
        self.assertEqual(int.from_bytes(keepalive, "big"), KEEPALIVE)
        self.assertIn(b"pistatsd/pi/availability", sent)
        self.assertIn(b"offline", sent)
        self.assertNoResult(d)

    def test_publish_retained_and_acknowledged(self) -> None:
        session, transport, protocol = self.connected()
        done = session.publish("pistatsd/pi/state", b'{"cpu":1}', retain=True)
        packet = transport.value()
        self.assertEqual(packet[0], 0x30 | 0x02 | 0x01)  # PUBLISH, QoS 1, retain
        self.assertTrue(packet.endswith(b'{"cpu":1}'))
        self.assertNoResult(done)
        msg_id = packet[2 + 2 + len("pistatsd/pi/state") : 2 + 2 + len("pistatsd/pi/state") + 2]
        protocol.dataReceived(bytes([0x40, 0x02]) + msg_id)
        self.successResultOf(done)

    def test_empty_payload_for_a_removed_entity(self) -> None:
        session, transport, _ = self.connected()
        session.publish("homeassistant/sensor/x/y/config", b"", retain=True)
        packet = transport.value()
        topic = b"homeassistant/sensor/x/y/config"
        self.assertEqual(packet[1], 2 + len(topic) + 2, "no payload bytes")

    def test_wrong_password(self) -> None:
        d = self.connector.connect()
        self.endpoint.protocols[0].dataReceived(connack(5))
        failure = self.failureResultOf(d, LoginRefused)
        self.assertEqual(failure.getErrorMessage(), "not authorized")
        self.assertTrue(self.endpoint.transports[0].disconnecting)

    def test_other_refusal(self) -> None:
        d = self.connector.connect()
        self.endpoint.protocols[0].dataReceived(connack(3))
        self.assertIn("Server unavailable", self.failureResultOf(d).getErrorMessage())

    def test_closed_before_connack_fails_at_once(self) -> None:
        d = self.connector.connect()
        self.endpoint.protocols[0].connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(d, ConnectionDone)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_no_connack_times_out(self) -> None:
        d = self.connector.connect()
        self.clock.advance(CONNECT_TIMEOUT)
        self.failureResultOf(d, TimeoutError)

    def test_keepalive_pings_run_on_the_injected_clock(self) -> None:
        _, transport, protocol = self.connected()
        self.clock.advance(KEEPALIVE)
        self.assertEqual(transport.value(), b"\xc0\x00")  # PINGREQ
        protocol.dataReceived(b"\xd0\x00")  # PINGRESP
        transport.clear()
        self.clock.advance(KEEPALIVE)
        self.assertEqual(transport.value(), b"\xc0\x00")
        self.clock.advance(KEEPALIVE)  # no PINGRESP: the connection is given up
        self.assertTrue(transport.disconnecting)

    def test_nothing_unsent_crosses_to_the_next_connection(self) -> None:
        session, _, protocol = self.connected()
        sent = session.publish("a", b"1", retain=True)
        queued = session.publish("b", b"2", retain=True)  # waits behind the first (window 1)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(session.lost.called)
        self.failureResultOf(sent, ConnectionDone)
        self.failureResultOf(queued, ConnectionDone)
        _, transport2, _ = self.connected()
        self.assertEqual(transport2.value(), b"", "nothing replayed on the new connection")

    def test_subscribe_and_receive_retained(self) -> None:
        session, transport, protocol = self.connected()
        received: list[tuple[str, bytes, bool]] = []
        done = session.subscribe("homeassistant/+/n/+/config", lambda *m: received.append(m))
        packet = transport.value()
        self.assertEqual(packet[0], 0x82)  # SUBSCRIBE
        self.assertIn(b"homeassistant/+/n/+/config", packet)
        protocol.dataReceived(bytes([0x90, 0x03]) + packet[2:4] + b"\x00")  # SUBACK
        self.successResultOf(done)
        topic = b"homeassistant/sensor/n/x/config"
        body = len(topic).to_bytes(2, "big") + topic + b'{"a":1}'
        protocol.dataReceived(bytes([0x31, len(body)]) + body)  # retained, QoS 0
        self.assertEqual(received, [("homeassistant/sensor/n/x/config", b'{"a":1}', True)])

    def test_close_sends_disconnect(self) -> None:
        session, transport, _ = self.connected()
        session.close()
        self.assertEqual(transport.value(), b"\xe0\x00")
        self.assertTrue(transport.disconnecting)
