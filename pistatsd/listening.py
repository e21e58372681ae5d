"""Listening endpoints as services that stop start-up cleanly when they cannot bind."""

from __future__ import annotations

from twisted.application.internet import StreamServerEndpointService
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IStreamServerEndpoint
from twisted.logger import Logger

from pistatsd.errors import StartupError

_log = Logger()


def server_endpoint(reactor: object, description: str) -> IStreamServerEndpoint:
    """C{serverFromString}, refusing a TCP port number the kernel does not have.

    Twisted's C{tcp:} parser takes any integer; C{tcp:99999999} would
    otherwise fail only at C{bind}, with a traceback, once the daemon starts.

    @raise ValueError: a port number out of range (and whatever Twisted's parser raises).
    """
    from twisted.internet.endpoints import serverFromString

    endpoint: IStreamServerEndpoint = serverFromString(reactor, description)
    port = getattr(endpoint, "_port", None)  # where TCP4/TCP6ServerEndpoint keep it
    if isinstance(port, int) and not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range")
    return endpoint


class ListeningService(StreamServerEndpointService):
    """Listens on one endpoint string; a port that cannot be bound aborts start-up.

    Like L{twisted.application.strports.service} (the failure surfaces
    synchronously, so twistd never runs half-started), but the user sees the
    option and the reason instead of a traceback.
    """

    def __init__(
        self,
        option: str,
        description: str,
        factory: IProtocolFactory,
        endpoint: IStreamServerEndpoint,
    ) -> None:
        super().__init__(endpoint, factory)
        self._raiseSynchronously = True
        self.option = option
        self.description = description

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            reason = e.socketError
            reason = getattr(reason, "strerror", None) or str(reason)
            message = f"--{self.option} {self.description}: cannot listen: {reason}"
            _log.critical("{message}", message=message)
            raise StartupError(message) from None
        assert self._waitingForPort is not None  # set by the listen above
        self._waitingForPort.addCallback(self._bound)

    def _bound(self, port: IListeningPort | None) -> IListeningPort | None:
        """Say where it really listens: C{tcp:0} or a socket from systemd names no port."""
        if port is not None:
            _log.info(
                "listening on --{option} {description} at {address}",
                option=self.option,
                description=self.description,
                address=port.getHost(),
            )
        return port
