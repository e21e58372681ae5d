"""The WebSocket protocols: echo and broadcast, each its own backpressure-aware producer."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, cast

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import PreparedMessage
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

if TYPE_CHECKING:
    from pistatsd.ws.hub import WebSocketHub

_log = Logger()

#: Largest message (and frame) accepted; bigger ones close the connection with 1009.
MAX_MESSAGE = 64 * 1024

INTERNAL_ERROR = 1011


@implementer(IPushProducer)
class HubProtocol(WebSocketServerProtocol):
    """A WebSocket connection the hub knows about, and a producer on its own transport.

    The transport tells a registered push producer when its write buffer is
    full (C{pauseProducing}) and drained again (C{resumeProducing}); that is
    how a slow client is noticed without any buffer growing.
    """

    factory: PistatsdFactory
    #: The client's id, given by the hub when the handshake completes.
    ws_id: str
    paused_since: float | None = None
    messages_received = 0

    @property
    def hub(self) -> WebSocketHub:
        return self.factory.hub

    def onOpen(self) -> None:
        # Exceptions in onOpen vanish inside Autobahn: log them and close.
        try:
            # The HTTP connection's transport (TCP or TLS) is a consumer.
            transport = cast(IConsumer, self.transport)
            if getattr(transport, "producer", None) is not None:
                # The HTTP channel registered itself before the upgrade.
                transport.unregisterProducer()
            transport.registerProducer(self, True)
            self.hub.opened(self)
            self.opened()
        except Exception:
            _log.failure("WebSocket onOpen failed for {peer}", peer=self.peer)
            self.close_with(INTERNAL_ERROR, "internal error")

    def opened(self) -> None:
        """Subclasses greet the client here."""

    def dataReceived(self, data: bytes) -> None:
        """Autobahn's, without its debug line: the line's arguments (the method's
        qualified name, the peer) are formatted at every call, logged or not,
        a tenth of the server's CPU per echoed message."""
        self._dataReceived(data)

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        """Autobahn's for an open connection with nothing queued, without its debug line.

        Anything else (chopped or synchronous writes, queued frames, the
        handshake, octet logging) goes through Autobahn.
        """
        if (
            chopsize
            or sync
            or self.send_queue
            or self.factory.logOctets
            or self.state != self.STATE_OPEN
            or self.transport is None
        ):
            super().sendData(data, sync, chopsize)
            return
        self.transport.write(data)
        self.trafficStats.outgoingOctetsWireLevel += len(data)

    def send_prepared(self, prepared: PreparedMessage) -> None:
        """Send a message framed once for every client (the broadcast).

        Autobahn's C{sendPreparedMessage} hands the frame to L{sendData}, whose
        fast path writes it to the transport without Autobahn's debug line.
        """
        self.sendPreparedMessage(prepared)

    def close_with(self, code: int, reason: str) -> None:
        """Start the closing handshake with a protocol-level code (1001, 1011).

        Autobahn's C{sendClose} only takes application codes (1000, 3000-4999);
        these server codes are RFC 6455's own.
        """
        if self.state == self.STATE_OPEN:
            self.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8"))
        else:
            self.dropConnection(abort=True)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.hub.closed(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        # Also covers connections that never completed the handshake.
        self.hub.closed(self)

    # IPushProducer: called by the transport.
    def pauseProducing(self) -> None:
        if self.paused_since is None:
            self.paused_since = self.hub.clock.seconds()

    def resumeProducing(self) -> None:
        self.paused_since = None

    def stopProducing(self) -> None:
        pass


class EchoProtocol(HubProtocol):
    """Sends every message back unchanged, with its type (text or binary).

    While the client is not reading our replies, we stop reading its
    messages: a client that sends without reading only stalls itself.
    """

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.messages_received += 1
        self.sendMessage(payload, isBinary)

    def pauseProducing(self) -> None:
        super().pauseProducing()
        pause = getattr(self.transport, "pauseProducing", None)
        if pause is not None:
            pause()

    def resumeProducing(self) -> None:
        super().resumeProducing()
        resume = getattr(self.transport, "resumeProducing", None)
        if resume is not None:
            resume()


def _socket_of(transport: object) -> socket.socket | None:
    """The OS socket under a transport, through any TLS wrapper."""
    for _ in range(4):
        handle = getattr(transport, "getHandle", lambda: None)()
        if isinstance(handle, socket.socket):
            return handle
        transport = getattr(transport, "transport", None)
        if transport is None:
            return None
    return None


class BroadcastProtocol(HubProtocol):
    """Receives the periodic stats; what it sends is counted and otherwise ignored."""

    #: Kernel send buffer for broadcast sockets.  A stats stream needs little;
    #: Linux would otherwise let a stuck client's socket grow to megabytes of
    #: kernel memory before we even hear of backpressure.
    SEND_BUFFER = 32 * 1024

    def opened(self) -> None:
        sock = _socket_of(self.transport)
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.SEND_BUFFER)
            except OSError as e:
                _log.debug("cannot set SO_SNDBUF: {error}", error=e)
        self.hub.broadcaster.join(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.messages_received += 1
        self.hub.broadcaster.messages_ignored += 1


class PistatsdFactory(WebSocketServerFactory):
    """A factory with explicit, strict limits (Autobahn's defaults are permissive)."""

    def __init__(
        self,
        protocol: type[HubProtocol],
        hub: WebSocketHub,
        *,
        auto_ping_interval: float = 30.0,
        auto_ping_timeout: float = 15.0,
    ) -> None:
        super().__init__(reactor=hub.clock)
        self.protocol = protocol
        self.hub = hub
        self.setProtocolOptions(
            maxFramePayloadSize=MAX_MESSAGE,
            maxMessagePayloadSize=MAX_MESSAGE,
            autoPingInterval=auto_ping_interval,
            autoPingTimeout=auto_ping_timeout,
            openHandshakeTimeout=10,
            # Tell a misbehaving client why (e.g. 1009 for a message over the
            # limit) with a close frame instead of just dropping it.
            failByDrop=False,
            closeHandshakeTimeout=5,
            # The Origin policy is enforced by the resource before the
            # upgrade (it needs the request's Host); Autobahn must not
            # second-guess it.  setProtocolOptions resets allowNullOrigin,
            # so it is set here explicitly too.
            allowedOrigins=["*"],
            allowNullOrigin=False,
        )
