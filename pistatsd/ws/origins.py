"""Which browser pages may open our WebSockets and send us changes.

A browser sends the page's origin with every WebSocket handshake and every
POST, PUT or DELETE; without a check, any web page a user visits could read
their machine's stats through their browser, or change its sensors.
Same-origin pages and the configured C{--allowed-origin} values are accepted;
requests with no C{Origin} header come from non-browser clients (curl,
scripts, C{pistatsd-client}) and are accepted too.  The same policy serves
the WebSocket handshake (L{pistatsd.ws.resource}) and changes
(L{pistatsd.web.checks}); the hosts of the allowed origins are served names
too (L{pistatsd.web.hosts}).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from attrs import frozen

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _normalise(scheme: str, host: str, port: int | None) -> str:
    scheme = scheme.lower()
    if port is None:
        port = _DEFAULT_PORTS.get(scheme, 0)
    return f"{scheme}://{host.lower()}:{port}"


def origin_key(origin: str) -> str | None:
    """C{scheme://host:port} with the default port filled in, or None if unparsable."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return _normalise(parts.scheme, parts.hostname, port)


def _pattern(allowed: str) -> re.Pattern[str]:
    """An C{--allowed-origin} value as a regex; C{*} matches within a host or port."""
    text = allowed.strip().lower()
    if not re.search(r":(\d+|\*)$", text.split("://", 1)[-1]):
        scheme = text.split("://", 1)[0]
        text = f"{text}:{_DEFAULT_PORTS.get(scheme, 0)}"
    return re.compile("^" + re.escape(text).replace(r"\*", "[^/]*") + "$")


def pattern_host(allowed: str) -> str:
    """The host part of an C{--allowed-origin} value (lower case, brackets and port removed).

    It may hold C{*}: C{https://*.example.org:*} gives C{*.example.org}.
    """
    rest = allowed.strip().lower().split("://", 1)[-1].split("/", 1)[0]
    if rest.startswith("["):
        return rest[1:].split("]", 1)[0]
    return re.sub(r":(\d+|\*)?$", "", rest)


@frozen
class OriginPolicy:
    """Decides whether a handshake's C{Origin} may connect."""

    allowed: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def from_config(cls, allowed_origins: Iterable[str]) -> OriginPolicy:
        """Build from C{--allowed-origin} values (C{https://pi.local:*}, C{http://x:8080})."""
        return cls(tuple(_pattern(o) for o in allowed_origins))

    def allows(self, origin: bytes | None, host: bytes | None, secure: bool) -> bool:
        """Whether a request with this Origin and Host, over TLS or not, is accepted."""
        if origin is None:
            return True
        key = origin_key(origin.decode("latin-1"))
        if key is None:
            return False
        if host:
            own_scheme = "https" if secure else "http"
            try:
                parts = urlsplit(f"//{host.decode('latin-1')}")
                own = _normalise(own_scheme, parts.hostname or "", parts.port)
            except ValueError:
                own = None
            if own == key:
                return True
        return any(pattern.match(key) for pattern in self.allowed)
