"""Open connections, HTTP and WebSocket, held to one limit (C{--max-connections}).

The site counts a connection while it speaks HTTP; once it upgrades to a
WebSocket, the hub counts it instead.  Both are given the same
L{ConnectionCounter}, so the limit covers them together and C{/health} and
C{/metrics} read one place.
"""

from __future__ import annotations

from typing import Literal

from twisted.logger import Logger

from pistatsd.episodes import Episode

_log = Logger()

#: Who counts a connection: the site (HTTP) or the WebSocket hub (upgraded).
Kind = Literal["http", "websocket"]


class ConnectionCounter:
    """How many connections are open, of each kind, and how many were refused at the limit.

    Reaching the limit is an episode: the first refusal is logged, the
    closing line (once a connection closes below the limit) says how many
    were refused.

    @ivar refused: connections refused at the limit since start.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.refused = 0
        self._open: dict[Kind, int] = {"http": 0, "websocket": 0}
        self._at_limit = Episode(
            _log,
            "Connection cap of {max_connections} reached; refusing new connections",
            "Below the connection cap again after refusing {count} connections",
        )

    @property
    def count(self) -> int:
        """Every open connection, whatever it speaks."""
        return self._open["http"] + self._open["websocket"]

    def open(self, kind: Kind) -> int:
        """Open connections of one kind."""
        return self._open[kind]

    def admit(self) -> bool:
        """Whether a new connection may be accepted; one refused is counted (and logged once)."""
        if self.count < self.limit:
            return True
        self.refused += 1
        self._at_limit.happened(max_connections=self.limit)
        return False

    def opened(self, kind: Kind) -> None:
        """A connection of this kind is now open (an upgrade: the hub's, once the site's closed)."""
        self._open[kind] += 1

    def closed(self, kind: Kind) -> None:
        """A connection of this kind closed (or left HTTP); may end an episode at the limit."""
        self._open[kind] -= 1
        if self.count < self.limit:
            self._at_limit.ended()
