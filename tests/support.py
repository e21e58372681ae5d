"""In-memory HTTP for tests: a real HTTPChannel over a StringTransport, no sockets."""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.web.http_headers import Headers


@dataclass
class Response:
    """One parsed HTTP/1.1 response."""

    status: int
    headers: Headers
    body: bytes
    raw: bytes = field(repr=False, default=b"")

    def header(self, name: str) -> str | None:
        """The first value of header C{name}, decoded, or None."""
        values = self.headers.getRawHeaders(name.encode())
        return values[0].decode("latin-1") if values else None


def parse_responses(data: bytes) -> list[Response]:
    """Split a byte stream of pipelined responses (Content-Length or chunked)."""
    responses: list[Response] = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError(f"incomplete response head: {data[:200]!r}")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = Headers()
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.addRawHeader(name.strip(), value.strip())
        if status in (100, 101):
            if status == 101:
                responses.append(Response(status, headers, b"", head + sep))
                return responses
            data = rest
            continue
        length = headers.getRawHeaders(b"content-length")
        chunked = headers.getRawHeaders(b"transfer-encoding")
        if length is not None:
            n = int(length[0])
            body, rest = rest[:n], rest[n:]
        elif chunked:
            body = b""
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    _, _, rest = rest.partition(b"\r\n")
                    break
                body += rest[:size]
                rest = rest[size + 2 :]
        else:
            body, rest = rest, b""
        responses.append(Response(status, headers, body, head + sep + body))
        data = rest
    return responses


class HalfClosingTransport(StringTransport):
    """A StringTransport that can half-close, like a TCP socket (C{shutdown(SHUT_WR)})."""

    write_closed = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True


class Client:
    """Drive a Site through one in-memory connection.

    C{send} feeds raw bytes; C{responses} parses everything written so far.
    """

    def __init__(
        self, site, peer: str = "127.0.0.1", port: int = 40000, transport_class=StringTransport
    ) -> None:
        self.transport = transport_class(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8888),
            peerAddress=IPv4Address("TCP", peer, port),
        )
        self.channel = site.buildProtocol(self.transport.getPeer())
        # Real transports know their protocol (a WebSocket upgrade replaces it).
        self.transport.protocol = self.channel
        if self.channel is not None:
            self.channel.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        """Feed bytes to the server as if they arrived from the network."""
        self.channel.dataReceived(data)

    def responses(self) -> list[Response]:
        """Every response written so far."""
        return parse_responses(self.transport.value())

    def close(self) -> None:
        """Simulate the peer going away."""
        from twisted.internet.error import ConnectionDone
        from twisted.python.failure import Failure

        self.channel.connectionLost(Failure(ConnectionDone()))


def build_request(
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> bytes:
    """Encode one HTTP/1.1 request (with C{Host: 127.0.0.1:8888} unless C{headers} name one)."""
    headers = dict(headers or {})
    lines = [f"{method} {path} HTTP/1.1"]
    if "Host" not in headers:
        lines.append("Host: 127.0.0.1:8888")
    if body is not None and "Content-Length" not in headers and "Transfer-Encoding" not in headers:
        headers["Content-Length"] = str(len(body))
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def request(site, method: str, path: str, headers=None, body=None, peer="127.0.0.1") -> Response:
    """One request on a fresh in-memory connection; returns its (single) response."""
    client = Client(site, peer=peer)
    client.send(build_request(method, path, headers, body))
    responses = client.responses()
    assert len(responses) == 1, f"expected one response, got {len(responses)}"
    return responses[0]
