"""The listening services in memory: where they really listen is logged."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IStreamServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from pistatsd.listening import ListeningService


@implementer(IListeningPort)
class _Port:
    """A listening port that only knows its address."""

    def __init__(self, address: IPv4Address) -> None:
        self.address = address

    def startListening(self) -> None:
        pass

    def stopListening(self) -> None:
        pass

    def getHost(self) -> IPv4Address:
        return self.address


@implementer(IStreamServerEndpoint)
class _Endpoint:
    """Listens at once (like TCP), or when told to (like a slow endpoint)."""

    def __init__(self, port: _Port | None = None) -> None:
        self.port = port
        self.pending: Deferred[IListeningPort] = Deferred()

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        return succeed(self.port) if self.port is not None else self.pending


class BoundAddressTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.factory = Factory.forProtocol(Protocol)

    def test_the_bound_port_is_logged(self) -> None:
        """C{tcp:0} names no port: the log line gives the one the kernel chose."""
        endpoint = _Endpoint(_Port(IPv4Address("TCP", "127.0.0.1", 43210)))
        service = ListeningService("port", "tcp:0:interface=127.0.0.1", self.factory, endpoint)
        with capturedLogs() as events:
            service.privilegedStartService()
        lines = [formatEvent(e) for e in events if e.get("log_namespace") == "pistatsd.listening"]
        self.assertEqual(
            lines,
            [
                "listening on --port tcp:0:interface=127.0.0.1 at "
                "IPv4Address(type='TCP', host='127.0.0.1', port=43210)"
            ],
        )

    def test_logged_once_bound_not_before(self) -> None:
        """An endpoint that binds later logs then, and the port still reaches stopService."""
        endpoint = _Endpoint()
        service = ListeningService("tls", "ssl:0", self.factory, endpoint)
        with capturedLogs() as events:
            service.privilegedStartService()
            self.assertEqual([e for e in events if "address" in e], [])
            port = _Port(IPv4Address("TCP", "0.0.0.0", 8443))
            endpoint.pending.callback(port)
        [event] = [e for e in events if "address" in e]
        self.assertEqual((event["option"], event["address"]), ("tls", port.address))
        self.assertIsNone(self.successResultOf(service.stopService()))
