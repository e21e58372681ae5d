"""The daemon's address: every URL the client uses is derived from one BASE_URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from attrs import frozen

#: Schemes accepted in a BASE_URL, and whether each means TLS.  People paste
#: what they have at hand: the dashboard's address, or the WebSocket URL shown
#: by the browser's developer tools.
SCHEMES = {"http": False, "https": True, "ws": False, "wss": True}

#: The daemon's own resources.  A BASE_URL that ends with one of them (the URL
#: of C{/stats}, of C{/ws/broadcast}...) names the daemon just the same: the
#: resource is dropped and what comes before it is the prefix.  Longest first,
#: so C{/ws/echo} is not taken for C{/ws}.
RESOURCES = (
    "/stats/temperature",
    "/stats/throttled",
    "/stats/history",
    "/stats/memory",
    "/stats/uptime",
    "/stats/swap",
    "/stats/disk",
    "/stats/cpu",
    "/stats/net",
    "/ws/broadcast",
    "/ws/echo",
    "/ws-test.html",
    "/index.html",
    "/metrics",
    "/health",
    "/alive",
    "/stats",
    "/api",
    "/sum",
    "/ws",
)


def _prefix(path: str) -> str:
    """The path prefix in front of the daemon's resources: C{""} or C{/pistatsd}."""
    path = path.rstrip("/")
    for resource in RESOURCES:
        if path.endswith(resource):
            return path[: -len(resource)].rstrip("/")
    return path


@frozen
class BaseURL:
    """Where the daemon is: scheme, host, port and path prefix, checked before any request.

    Parsed from C{http(s)://host:port}, C{ws(s)://host:port} or the URL of one
    of the daemon's resources (C{ws://pi:8888/ws/broadcast}). Keeping the
    parts (not the string) lets the WebSocket side reuse the host and port for
    its endpoint and pick the scheme (C{ws}/C{wss}, C{http}/C{https}) without
    string surgery. A path prefix is kept so a daemon behind a reverse proxy
    (C{https://pi.local/pistatsd}) works too.
    """

    secure: bool
    host: str
    port: int
    prefix: str = ""

    @classmethod
    def parse(cls, text: str) -> BaseURL:
        """The daemon named by C{text}; C{ValueError} with a message fit for a usage error.

        A fragment (C{#range=1h}, from a dashboard's address bar) is ignored: it
        never reaches a server.
        """
        parts = urlsplit(text.strip())
        if parts.scheme not in SCHEMES:
            raise ValueError(
                f"{text!r}: the URL must start with http://, https://, ws:// or wss://"
            )
        if not parts.hostname:
            raise ValueError(f"{text!r}: the URL names no host")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"{text!r}: the port must be a number from 1 to 65535") from None
        if port == 0:
            raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
        if parts.query or parts.username is not None:
            raise ValueError(f"{text!r}: give only scheme, host, port (and a path prefix)")
        secure = SCHEMES[parts.scheme]
        default = 443 if secure else 80
        return cls(secure, parts.hostname, port or default, _prefix(parts.path))

    @property
    def netloc(self) -> str:
        """C{host:port}, with brackets around an IPv6 address; also names the server in errors."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def http(self, path: str) -> str:
        """The HTTP(S) URL of C{path} (which starts with a slash)."""
        scheme = "https" if self.secure else "http"
        return f"{scheme}://{self.netloc}{self.prefix}{path}"

    def ws(self, path: str) -> str:
        """The WebSocket URL of C{path}: C{wss://} when the daemon is reached over TLS."""
        scheme = "wss" if self.secure else "ws"
        return f"{scheme}://{self.netloc}{self.prefix}{path}"
