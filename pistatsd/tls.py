"""TLS endpoints (to be implemented)."""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IStreamServerEndpoint

from pistatsd.config import Config


def tls_endpoint(reactor: Any, description: str, config: Config) -> IStreamServerEndpoint:
    """The listening endpoint for one C{--tls} string."""
    raise NotImplementedError("--tls is not available yet")
