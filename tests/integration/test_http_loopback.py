"""Hostile clients against the real daemon over loopback, where the kernel matters:
a reset (RST) would throw away the answer a plain close (FIN) lets the client read."""

from __future__ import annotations

import base64
import json
import os
import socket
import time

BODY = b"x" * 80_000


def exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send C{data} in one C{sendall}, then read until the server closes.

    A reset ends the reading too: what had been read by then is returned,
    which is nothing at all when the reset arrived first.
    """
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            while chunk := s.recv(65536):
                received += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
    return received


def post_sum(port: int, framing: dict[str, str], body: bytes, host: str = "127.0.0.1") -> bytes:
    head = f"POST /sum HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in framing.items())
    return head.encode() + b"\r\n" + body


def chunked(body: bytes, size: int = 8192) -> bytes:
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


def test_413_is_read_after_sending_the_whole_body_at_once(daemon):
    """Headers and an 80 KB body in one write, 50 times chunked and 50 times with
    Content-Length: the 413 status line arrives every time (no reset)."""
    d = daemon()
    requests = {
        "chunked": post_sum(d.port, {"Transfer-Encoding": "chunked"}, chunked(BODY)),
        "length": post_sum(d.port, {"Content-Length": str(len(BODY))}, BODY),
    }
    started = time.monotonic()
    for name, data in requests.items():
        for i in range(50):
            answer = exchange(d.port, data)
            assert answer.startswith(b"HTTP/1.1 413 "), (name, i, answer[:200])
            assert answer.endswith(b'{"error": "request body exceeds 65536 bytes"}')
    assert time.monotonic() - started < 30
    assert "Traceback" not in d.text()
    # Refused requests are counted like the others.
    metrics = d.get("/metrics")[2].decode()
    assert 'route="/sum",status="413"} 100.0' in metrics


def test_linger_is_bounded_for_a_client_that_never_stops(daemon):
    """A client that keeps sending after its 413 is cut off after 1 MiB, not served forever."""
    d = daemon()
    with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
        s.sendall(post_sum(d.port, {"Content-Length": "100000000"}, b""))
        assert s.recv(65536).startswith(b"HTTP/1.1 413 ")
        sent = 0
        try:
            while sent < 64 << 20:
                sent += s.send(b"y" * 65536)
        except (ConnectionResetError, BrokenPipeError):
            pass
    assert sent < 16 << 20


def test_long_lines_get_a_status_line_not_a_silent_close(daemon):
    d = daemon()
    answer = exchange(d.port, b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 414 "), answer[:200]
    answer = exchange(d.port, b"GET /alive HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"b" * 17000)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


def upgrade(port: int, host: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    data = (
        f"GET /ws/echo HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data.encode())
        return s.recv(65536)


def test_rebinding_host_gets_421(daemon, tmp_path):
    """A page that rebound its own name to 127.0.0.1 cannot change sensors or open
    WebSockets; the same requests with localhost (or 127.0.0.1) work."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "temp").write_text("21500\n")
    d = daemon("--state-dir", str(tmp_path / "state"), "--sensor-root", str(root))
    sensor = json.dumps({"name": "room", "path": str(root / "temp")}).encode()
    headers = {"Content-Type": "application/json", "Host": f"rebind.example:{d.port}"}
    status, _, body = d.get("/api/sensors", headers, "POST", sensor)
    assert status == 421
    assert "host" in json.loads(body)["error"]
    assert upgrade(d.port, f"rebind.example:{d.port}").startswith(b"HTTP/1.1 421 ")
    assert json.loads(d.get("/api/sensors")[2])["sensors"] == []

    headers["Host"] = f"localhost:{d.port}"
    status, _, _ = d.get("/api/sensors", headers, "POST", sensor)
    assert status == 201
    assert upgrade(d.port, f"localhost:{d.port}").startswith(b"HTTP/1.1 101 ")
    assert upgrade(d.port, f"127.0.0.1:{d.port}").startswith(b"HTTP/1.1 101 ")


def test_allowed_host_option(daemon):
    d = daemon("--allowed-host", ".home.example")
    assert d.get("/alive", {"Host": f"pi.home.example:{d.port}"})[0] == 200
    assert d.get("/alive", {"Host": "pi.other.example"})[0] == 421


def test_machine_address_is_served(daemon):
    """The machine's own address, as a LAN client would write it (no other address is used)."""
    from pistatsd.web.machine import own_addresses

    others = sorted(a for a in own_addresses() if ":" not in a and not a.startswith("127."))
    d = daemon()
    for address in others[:3]:
        assert d.get("/alive", {"Host": f"{address}:{d.port}"})[0] == 200, address


def test_a_unix_socket_checks_host_too(daemon, tmp_path):
    """nginx may relay any name to a UNIX socket: the names are checked there as well."""
    path = str(tmp_path / "p.sock")
    daemon("--port", f"unix:{path}")
    for host, status in ((b"localhost", b"200"), (b"rebind.example", b"421")):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(path)
            s.sendall(b"GET /alive HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 " + status)


def test_413_over_tls_is_read_too(daemon, tmp_path):
    """TLS has no safe half-close under it: the server keeps reading instead, and the
    client still reads the 413 (20 times, the whole body sent at once).  Like curl, the
    client closes once it has the whole answer (Content-Length, Connection: close)."""
    import ssl

    from tests.integration.test_tls import client_context, tls_daemon

    _, port = tls_daemon(daemon, str(tmp_path / "state"))
    data = post_sum(port, {"Content-Length": str(len(BODY))}, BODY, host="localhost")
    for i in range(20):
        received = b""
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_context().wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            try:
                tls.sendall(data)
                while not complete(received) and (chunk := tls.recv(65536)):
                    received += chunk
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
                pass
        assert received.startswith(b"HTTP/1.1 413 "), (i, received[:200])
        assert complete(received)


def complete(response: bytes) -> bool:
    """Whether C{response} holds its head and the whole body its Content-Length announces."""
    head, sep, body = response.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False
