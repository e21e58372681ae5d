"""The shipped nginx site, in front of the real pistatsd, with the real nginx.

C{etc/nginx/pistatsd.conf} is used as shipped except for four lines moved to
loopback ports and temp dirs (each must be found exactly once, so the test
notices when the file changes shape), wrapped in a minimal C{nginx.conf}.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.daemon import PROJECT, Daemon, http_request
from tests.real import require_program

pytestmark = pytest.mark.real

SITE = os.path.join(PROJECT, "etc", "nginx", "pistatsd.conf")


def site_config(
    www: str, listen_port: int, upstream_port: int, forwarded_proto: str | None = None
) -> str:
    """The shipped server block, listening on loopback, proxying to C{upstream_port}.

    @param forwarded_proto: what nginx tells pistatsd the browser used, in
        place of the connection's scheme (C{https}: as a TLS front would).
    """
    with open(SITE) as f:
        text = f.read()
    replacements = [
        ("listen 80;", f"listen 127.0.0.1:{listen_port};"),
        ("listen [::]:80;", ""),
        ("root /var/www/pistatsd;", f"root {www};"),
        ("server 127.0.0.1:8888;", f"server 127.0.0.1:{upstream_port};"),
    ]
    if forwarded_proto is not None:
        replacements.append(
            (
                "proxy_set_header X-Forwarded-Proto $scheme;",
                f"proxy_set_header X-Forwarded-Proto {forwarded_proto};",
            )
        )
    for old, new in replacements:
        assert text.count(old) == 1, f"{SITE} no longer has exactly one {old!r}"
        text = text.replace(old, new)
    return text


class Nginx:
    """nginx in the foreground with a temp prefix, serving the shipped site.

    Its listening socket is made here and handed over the way nginx's binary
    upgrade does (the C{NGINX} variable names inherited sockets): the port is
    known before nginx starts, and no other process can take it meanwhile.
    """

    def __init__(
        self,
        program: str,
        directory: str,
        www: str,
        upstream_port: int,
        forwarded_proto: str | None = None,
    ) -> None:
        self.directory = directory
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "pistatsd.conf"), "w") as f:
            f.write(site_config(www, self.port, upstream_port, forwarded_proto))
        mime = "include /etc/nginx/mime.types;" if os.path.exists("/etc/nginx/mime.types") else ""
        # Workers of a root master default to "nobody", which cannot read the tmp dirs.
        user = "user root;" if os.geteuid() == 0 else ""
        temp = "\n".join(
            f"    {kind}_temp_path {directory}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        with open(os.path.join(directory, "nginx.conf"), "w") as f:
            f.write(
                f"daemon off;\n{user}\nworker_processes 1;\npid {directory}/nginx.pid;\n"
                f"error_log {directory}/error.log info;\n"
                "events { worker_connections 64; }\n"
                f"http {{\n    {mime}\n    default_type application/octet-stream;\n"
                f"    access_log {directory}/access.log;\n{temp}\n"
                f"    include {directory}/pistatsd.conf;\n}}\n"
            )
        self.proc = subprocess.Popen(
            [
                program,
                "-p",
                directory,
                "-e",
                f"{directory}/error.log",
                "-c",
                f"{directory}/nginx.conf",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, NGINX=f"{listener.fileno()};"),
            pass_fds=(listener.fileno(),),
        )
        listener.close()  # only nginx holds it now
        self._wait_until_listening()

    def _wait_until_listening(self, timeout: float = 20.0) -> None:
        """Until a worker runs: connecting proves nothing, the inherited socket queues."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited ({self.proc.returncode}):\n{self.errors()}")
            if "start worker process" in self._error_log():
                return
            # Not serving yet: wait for nginx to exit, up to 20 ms, then look again.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=0.02)
        raise AssertionError(f"nginx not listening within {timeout}s:\n{self.errors()}")

    def _error_log(self) -> str:
        path = os.path.join(self.directory, "error.log")
        if os.path.exists(path):
            with open(path) as f:
                return f.read()
        return ""

    def errors(self) -> str:
        out = self.proc.stdout.read().decode() if self.proc.poll() is not None else ""
        return out + self._error_log()

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        return http_request(self.port, method, path, headers, body, timeout=15)

    def get(self, path: str, headers: dict[str, str] | None = None):
        return self.request("GET", path, headers)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful shutdown
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


@pytest.fixture
def www(tmp_path) -> str:
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.html").write_text("<!doctype html><html><body>dashboard</body></html>")
    (root / "hello.txt").write_text("served by nginx")
    (root / ".secret").write_text("never served")
    (root / ".well-known" / "acme-challenge").mkdir(parents=True)
    (root / ".well-known" / "acme-challenge" / "token").write_text("acme")
    return str(root)


@pytest.fixture
def pistatsd(www) -> Iterator[Daemon]:
    d = Daemon(["--www", www]).start()
    yield d
    assert d.stop() == 0


@pytest.fixture
def nginx(tmp_path, www, pistatsd) -> Iterator[Nginx]:
    server = Nginx(require_program("nginx"), str(tmp_path / "nginx"), www, pistatsd.port)
    yield server
    server.stop()


def requests_seen(d: Daemon) -> int:
    """Requests pistatsd has answered, not counting this one."""
    return json.loads(d.get("/health")[2])["requests_total"]


def test_static_files_never_reach_pistatsd(nginx, pistatsd):
    before = requests_seen(pistatsd)
    status, headers, body = nginx.get("/hello.txt")
    assert (status, body) == (200, b"served by nginx")
    assert headers["Server"].startswith("nginx")
    assert nginx.get("/index.html")[0] == 200
    # Only the first /health itself was counted since.
    assert requests_seen(pistatsd) == before + 1
    # ...whereas a dynamic path does reach it.
    assert nginx.get("/alive")[2] == b"Alive"
    assert requests_seen(pistatsd) == before + 3


def test_dynamic_paths(nginx, pistatsd):
    assert nginx.get("/sum?a=1&b=2")[2] == b"Sum: 3"
    status, headers, body = nginx.get("/stats")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert "cpu" in json.loads(body)
    assert json.loads(nginx.get("/stats/memory")[2])["memory"]["total"] > 0
    assert json.loads(nginx.get("/health")[2])["status"] == "ok"
    assert json.loads(nginx.get("/api?x=1")[2])["args"] == {"x": ["1"]}
    assert b"You requested /a/b.zzz" in nginx.get("/a/b.zzz")[2]
    status, _, body = nginx.request(
        "POST", "/sum", {"Content-Type": "application/json"}, b'{"a": 3, "b": 4.5}'
    )
    assert (status, body) == (200, b"Sum: 7.5")
    # Not a file, so pistatsd answers (its 404).
    assert nginx.get("/no-such-file")[0] == 404


def test_root_is_negotiated_by_pistatsd(nginx, pistatsd):
    before = requests_seen(pistatsd)
    status, headers, body = nginx.get("/")
    assert (status, body) == (200, b"Alive")
    assert headers["Vary"] == "Accept"
    status, headers, body = nginx.get("/", {"Accept": "text/html,*/*;q=0.8"})
    assert status == 200 and b"dashboard" in body
    assert requests_seen(pistatsd) == before + 3


def test_large_bodies_refused_by_nginx(nginx, pistatsd):
    before = requests_seen(pistatsd)
    status, _, body = nginx.request(
        "POST", "/sum", {"Content-Type": "application/json"}, b"x" * 100_000
    )
    # nginx's own page: pistatsd (which would also refuse it) never saw it.
    assert status == 413 and b"nginx" in body
    assert requests_seen(pistatsd) == before + 1


def test_sensor_changes_and_dotfiles_stop_at_nginx(nginx, pistatsd):
    before = requests_seen(pistatsd)
    body = json.dumps({"name": "x", "path": "/proc/loadavg"}).encode()
    status, _, _ = nginx.request("POST", "/api/sensors", {"Content-Type": "application/json"}, body)
    assert status == 403
    assert nginx.request("DELETE", "/api/sensors/x")[0] == 403
    assert nginx.get("/.secret")[0] == 404
    assert nginx.get("/.well-known/acme-challenge/token")[2] == b"acme"
    assert requests_seen(pistatsd) == before + 1


class _Recorder(BaseHTTPRequestHandler):
    """An upstream that answers 200 and remembers what nginx sent."""

    protocol_version = "HTTP/1.1"
    seen: list[dict]

    def do_GET(self) -> None:
        self.server.seen.append(
            {
                "path": self.path,
                "version": self.request_version,
                "peer_port": self.client_address[1],
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_forwarded_headers_keepalive_and_upgrade(tmp_path, www, recorder):
    nginx = Nginx(require_program("nginx"), str(tmp_path / "nginx"), www, recorder.server_port)
    try:
        assert nginx.get("/sum?a=1", {"X-Forwarded-For": "203.0.113.7"})[2] == b"ok"
        assert nginx.get("/stats")[2] == b"ok"
        assert nginx.get("/ws/echo", {"Upgrade": "websocket", "Connection": "Upgrade"})[2] == b"ok"
    finally:
        nginx.stop()
    first, second, upgrade = recorder.seen
    headers = first["headers"]
    assert headers["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert headers["x-real-ip"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["host"] == f"127.0.0.1:{nginx.port}"
    # HTTP/1.1 with no "Connection: close": the upstream connection is reused.
    assert first["version"] == second["version"] == "HTTP/1.1"
    assert "connection" not in headers
    assert second["peer_port"] == first["peer_port"]
    assert upgrade["path"] == "/ws/echo"
    assert upgrade["headers"]["upgrade"] == "websocket"
    assert upgrade["headers"]["connection"].lower() == "upgrade"


def test_websockets_through_nginx(nginx, pistatsd):
    """Echo and broadcast, upgraded by nginx and served by pistatsd, with the page's origin."""
    import asyncio
    import json

    import websockets

    async def go():
        base = f"ws://127.0.0.1:{nginx.port}"
        origin = f"http://127.0.0.1:{nginx.port}"
        async with websockets.connect(f"{base}/ws/echo", origin=origin) as ws:
            await ws.send("through nginx")
            assert await ws.recv() == "through nginx"
        async with websockets.connect(f"{base}/ws/broadcast", origin=origin) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
            assert json.loads(await ws.recv())["type"] == "stats"
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(f"{base}/ws/echo", origin="http://evil.example"):
                pass

    asyncio.run(asyncio.wait_for(go(), 30))


def test_https_pages_through_a_tls_front(tmp_path, www, pistatsd):
    """Behind a TLS-terminating nginx (here: one that says X-Forwarded-Proto https),
    an https:// page of the same host opens WebSockets and sends changes."""
    import asyncio

    import websockets

    front = Nginx(
        require_program("nginx"),
        str(tmp_path / "front"),
        www,
        pistatsd.port,
        forwarded_proto="https",
    )
    try:
        page = f"https://127.0.0.1:{front.port}"
        status, _, body = front.request(
            "POST", "/sum", {"Content-Type": "application/json", "Origin": page}, b'{"a": 2}'
        )
        assert (status, body) == (200, b"Sum: 2")
        status, _, _ = front.request(
            "POST",
            "/sum",
            {"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{front.port}"},
            b'{"a": 2}',
        )
        assert status == 403

        async def go() -> None:
            base = f"ws://127.0.0.1:{front.port}"
            async with websockets.connect(f"{base}/ws/echo", origin=page) as ws:
                await ws.send("over https")
                assert await ws.recv() == "over https"
            with pytest.raises(websockets.InvalidStatus):
                async with websockets.connect(f"{base}/ws/echo", origin="https://evil.example"):
                    pass

        asyncio.run(asyncio.wait_for(go(), 30))
    finally:
        front.stop()
