"""An in-memory WebSocket client for tests: the independent C{websockets} sans-I/O protocol
talking to our real Site over a StringTransport (no sockets, no reactor)."""

from __future__ import annotations

from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response as WSResponse
from websockets.uri import parse_uri

from tests.support import Client, parse_responses


class MemoryWebSocket:
    """One client connection: handshake on construction, then send/receive frames."""

    def __init__(
        self,
        site,
        path: str,
        origin: str | None = None,
        host: str = "127.0.0.1:8888",
        peer: str = "127.0.0.1",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.http = Client(site, peer=peer)
        self.ws = ClientProtocol(parse_uri(f"ws://{host}{path}"), max_size=None)
        request = self.ws.connect()
        if origin is not None:
            request.headers["Origin"] = origin
        for name, value in (headers or {}).items():
            request.headers[name] = value
        self.ws.send_request(request)
        self._flush_to_server()
        self.status: int | None = None
        self.messages: list[str | bytes] = []
        self.close_code: int | None = None
        self.pump()
        if self.status is None:
            # Not a 101: an ordinary HTTP answer.
            [response] = parse_responses(self.http.transport.value())
            self.status = response.status
            self.http_response = response

    @property
    def server(self):
        """The server-side protocol once upgraded."""
        return self.http.transport.protocol

    def _flush_to_server(self) -> None:
        data = b"".join(self.ws.data_to_send())
        if not data:
            return
        self.http.transport.protocol.dataReceived(data)

    def pump(self) -> list[str | bytes]:
        """Feed what the server wrote to the client; return new messages."""
        data = self.http.transport.value()
        self.http.transport.clear()
        if data and (self.status == 101 or data.startswith(b"HTTP/1.1 101")):
            self.ws.receive_data(data)
        elif data:
            self.http.transport.io.write(data)  # keep for parse_responses
            return []
        new: list[str | bytes] = []
        for event in self.ws.events_received():
            if isinstance(event, WSResponse):
                self.status = event.status_code
            elif isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    new.append(event.data.decode())
                elif event.opcode is Opcode.BINARY:
                    new.append(bytes(event.data))
                elif event.opcode is Opcode.CLOSE:
                    self.close_code = Close.parse(event.data).code
        self._flush_to_server()  # e.g. pong or close replies
        self.messages.extend(new)
        return new

    def send_text(self, text: str) -> None:
        self.ws.send_text(text.encode())
        self._flush_to_server()

    def send_binary(self, data: bytes) -> None:
        self.ws.send_binary(data)
        self._flush_to_server()
