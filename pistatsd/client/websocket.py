"""C{echo} and C{watch}: Autobahn WebSocket sessions on an injected reactor.

The small face of three modules: the L{Session} every conversation shares
(L{pistatsd.client.session}), C{echo} (L{pistatsd.client.echo}) and
C{watch} (L{pistatsd.client.watch}).
"""

from pistatsd.client.echo import EchoSession
from pistatsd.client.session import CLOSE_GRACE, HIGH_WATER, Session, client_endpoint
from pistatsd.client.watch import WatchSession

__all__ = ["CLOSE_GRACE", "HIGH_WATER", "EchoSession", "Session", "WatchSession", "client_endpoint"]
