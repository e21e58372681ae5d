"""The daemon's address: every URL the client uses is derived from one BASE_URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from attrs import frozen


@frozen
class BaseURL:
    """C{http(s)://host:port[/prefix]}, parsed once and checked before any request.

    Keeping the parts (not the string) lets the WebSocket side reuse the host and
    port for its endpoint and swap the scheme (http -> ws, https -> wss) without
    string surgery. A path prefix is kept so a daemon behind a reverse proxy
    (C{https://pi.local/pistatsd}) works too.
    """

    secure: bool
    host: str
    port: int
    prefix: str = ""

    @classmethod
    def parse(cls, text: str) -> BaseURL:
        """The base URL in C{text}; C{ValueError} with a message fit for a usage error."""
        parts = urlsplit(text.strip())
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"{text!r}: the URL must start with http:// or https://")
        if not parts.hostname:
            raise ValueError(f"{text!r}: the URL names no host")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"{text!r}: the port must be a number from 1 to 65535") from None
        if port == 0:
            raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
        if parts.query or parts.fragment or parts.username is not None:
            raise ValueError(f"{text!r}: give only scheme, host, port (and a path prefix)")
        secure = parts.scheme == "https"
        default = 443 if secure else 80
        return cls(secure, parts.hostname, port or default, parts.path.rstrip("/"))

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
        """The WebSocket URL of C{path}: C{wss://} when the daemon is reached over HTTPS."""
        scheme = "wss" if self.secure else "ws"
        return f"{scheme}://{self.netloc}{self.prefix}{path}"
