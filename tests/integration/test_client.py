"""pistatsd-client for real: the command line against the real daemon
(and, for TLS, against a small HTTPS + WSS server with certificates made here)."""

from __future__ import annotations

import ipaddress
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twisted.web.resource import Resource
from twisted.web.server import Request

from tests.client_support import MESSAGE, TICK, _certificate, _json
from tests.daemon import PROJECT, Daemon, refused_port

CLIENT = [sys.executable, "-m", "pistatsd.client"]
CONSOLE_SCRIPT = os.path.join(os.path.dirname(sys.executable), "pistatsd-client")


# -- the command line against the real daemon ---------------------------------------------


def client(*args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the client to completion."""
    return subprocess.run(
        [*CLIENT, *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        env=dict(os.environ, PYTHONIOENCODING="utf-8"),
    )


def start_client(*args: str) -> subprocess.Popen[bytes]:
    """Start the client; read its output with L{read_line}."""
    return subprocess.Popen(
        [*CLIENT, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        env=dict(os.environ, PYTHONIOENCODING="utf-8"),
    )


def read_line(proc: subprocess.Popen[bytes], timeout: float = 30) -> str:
    """One line of C{proc}'s stdout (read byte-wise from the pipe: nothing buffered and lost)."""
    assert proc.stdout is not None
    deadline, line = time.monotonic() + timeout, b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        readable, _, _ = select.select([proc.stdout], [], [], max(remaining, 0))
        if not readable:
            raise AssertionError(f"no line within {timeout} s (got {line!r})")
        byte = os.read(proc.stdout.fileno(), 1)
        if not byte:
            raise AssertionError(f"client exited ({proc.wait()}) after {line!r}")
        line += byte
    return line.decode()


def finish(proc: subprocess.Popen[bytes], timeout: float = 30) -> tuple[int, str, str]:
    """Wait for C{proc}; its status, the rest of its stdout, and its stderr."""
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode(), err.decode()


def one_error_line(stderr: str) -> str:
    """The single line a failing client printed (no traceback, nothing else)."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("pistatsd-client: "), stderr
    return lines[0]


@pytest.fixture(scope="module")
def server() -> Iterator[Daemon]:
    daemon = Daemon(["--broadcast-interval", "0.2", "--sample-interval", "0.5"]).start()
    yield daemon
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.text()


@pytest.fixture
def url(server: Daemon) -> str:
    return f"http://127.0.0.1:{server.port}"


def test_console_script_help() -> None:
    result = subprocess.run([CONSOLE_SCRIPT, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for command in ("stats", "sum", "echo", "watch", "--cafile", "--insecure", "--timeout"):
        assert command in result.stdout


def test_stats_prints_indented_json(url: str) -> None:
    result = client("stats", url)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    snapshot = json.loads(result.stdout)
    assert {"cpu", "memory", "temperature", "uptime"} <= set(snapshot)
    assert '\n  "cpu": {\n    "percent": ' in result.stdout


def test_stats_interval(url: str) -> None:
    result = client("stats", url, "--interval", "0.3")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["cpu"]["interval"] == pytest.approx(0.3, abs=0.2)


def test_stats_summary(url: str) -> None:
    """One screen from the real daemon: what its /stats has, within 24 x 80."""
    result = client("stats", url, "--summary")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert 4 <= len(lines) <= 24, result.stdout
    assert all(len(line) <= 80 for line in lines), result.stdout
    assert "  up " in lines[0]
    assert lines[1].startswith("cpu ") and " load " in lines[1], lines
    assert lines[2].startswith("mem ") and " of " in lines[2], lines
    assert lines[3].startswith("net   rx "), lines
    snapshot = json.loads(client("stats", url).stdout)
    if snapshot.get("filesystems"):
        assert "filesystems" in lines
        assert any(line.startswith("  / ") for line in lines), lines
    if snapshot.get("processes"):
        assert any(line.startswith("procs ") for line in lines), lines


def test_stats_http_error_status(url: str) -> None:
    result = client("stats", url, "--interval", "11")
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert line.startswith(f"pistatsd-client: GET {url}/stats: HTTP 400 Bad Request: "), line
    assert "interval" in line


def test_sum_get(url: str) -> None:
    result = client("sum", url, "1", "2", "3")
    assert (result.returncode, result.stdout, result.stderr) == (0, "Sum: 6\n", "")
    result = client("sum", url, "1", "-2", "3.5")
    assert (result.returncode, result.stdout) == (0, "Sum: 2.5\n")


def test_sum_post(url: str) -> None:
    result = client("sum", url, "1", "2", "3", "--post")
    assert (result.returncode, result.stdout, result.stderr) == (0, "Sum: 6\n", "")
    result = client("sum", url, "--post", "0.5", "0.25")
    assert (result.returncode, result.stdout) == (0, "Sum: 0.75\n")


def test_sum_non_numeric_is_a_usage_error_before_any_request() -> None:
    # Nothing listens there: a request would fail with 1, not 2.
    with refused_port() as port:
        result = client("sum", f"http://127.0.0.1:{port}", "1", "two")
    assert result.returncode == 2
    assert "usage: pistatsd-client sum" in result.stderr
    assert "'two' is not a number" in result.stderr
    assert result.stdout == ""


def test_echo_three_lines(url: str) -> None:
    result = client("echo", url, stdin="one\nzwei °C\nthree\n")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "one\nzwei °C\nthree\n"


def test_echo_many_lines(url: str) -> None:
    """More lines than may be outstanding at once: stdin is paused and resumed, none lost."""
    lines = "".join(f"line {n}\n" for n in range(3000))
    result = client("echo", url, stdin=lines)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == lines


def test_echo_empty_input(url: str) -> None:
    result = client("echo", url, stdin="")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_watch_count(url: str) -> None:
    result = client("watch", url, "--count", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    for line in lines:
        assert TICK.match(line), line


def test_watch_wrong_path(url: str) -> None:
    result = client("watch", url + "/not-here", "--count", "1")
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "/not-here/ws/broadcast failed" in line and "404" in line, line


def test_watch_exits_0_on_sigint(url: str) -> None:
    proc = start_client("watch", url)
    try:
        assert TICK.match(read_line(proc).rstrip("\n"))
        proc.send_signal(signal.SIGINT)
        code, _, err = finish(proc)
    finally:
        proc.kill()
    assert (code, err) == (0, "")


def test_watch_when_the_server_stops_or_dies() -> None:
    daemon = Daemon(["--broadcast-interval", "0.2"]).start()
    try:
        proc = start_client("watch", f"http://127.0.0.1:{daemon.port}")
        read_line(proc)
        assert daemon.stop() == 0  # SIGTERM: the daemon closes WebSockets with 1001
        code, _, err = finish(proc)
        assert code == 0
        assert "server closed the connection (1001" in one_error_line(err)
    finally:
        proc.kill()
        daemon.stop()

    daemon = Daemon(["--broadcast-interval", "0.2"]).start()
    try:
        proc = start_client("watch", f"http://127.0.0.1:{daemon.port}")
        read_line(proc)
        daemon.proc.kill()  # no closing handshake at all
        code, _, err = finish(proc)
        assert code == 1
        assert (
            one_error_line(err)
            == f"pistatsd-client: the connection to 127.0.0.1:{daemon.port} was lost"
        )
    finally:
        proc.kill()
        daemon.stop()


@pytest.mark.parametrize(
    "command", [["stats"], ["sum", "1", "2"], ["sum", "--post", "1"], ["echo"], ["watch"]]
)
def test_unreachable_server(command: list[str]) -> None:
    with refused_port() as port:
        result = client(command[0], f"http://127.0.0.1:{port}", *command[1:])
    assert result.returncode == 1
    assert result.stdout == ""
    assert (
        one_error_line(result.stderr)
        == f"pistatsd-client: cannot connect to 127.0.0.1:{port}: connection refused"
    )


@pytest.mark.parametrize("command", [["stats"], ["echo"], ["watch"]])
def test_timeout_when_the_server_never_answers(command: list[str]) -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        result = client("--timeout", "0.5", command[0], f"http://127.0.0.1:{port}")
        elapsed = time.monotonic() - started
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert line.startswith("pistatsd-client: timed out after 0.5 s waiting for"), line
    assert f"127.0.0.1:{port}" in line
    assert elapsed < 30


@pytest.mark.parametrize(
    ("command", "path"),
    [
        (["stats", "--summary"], "/stats"),
        (["sum", "1", "2"], "/sum/"),
        (["echo"], "/ws/echo"),
        (["watch", "--count", "1"], "/ws/broadcast"),
    ],
)
def test_websocket_and_resource_urls(server: Daemon, command: list[str], path: str) -> None:
    """C{ws://host:port/...} and resource URLs work for every command, against the daemon."""
    for scheme in ("ws", "http"):
        url = f"{scheme}://127.0.0.1:{server.port}{path}"
        result = client(command[0], url, *command[1:], stdin="hi\n")
        assert result.returncode == 0, (url, result.stderr)
        assert result.stderr == ""
        if command[0] == "sum":
            assert result.stdout == "Sum: 3\n"
        elif command[0] == "echo":
            assert result.stdout == "hi\n"
        elif command[0] == "watch":
            assert result.stdout.count("\n") == 1, result.stdout
        else:  # the summary: one screen
            assert 4 <= result.stdout.count("\n") <= 24, result.stdout
            assert "  up " in result.stdout.splitlines()[0], result.stdout


@pytest.mark.parametrize("bad", ["localhost:8888", "ftp://127.0.0.1:21", "http://127.0.0.1:99999"])
def test_bad_url_is_a_usage_error(bad: str) -> None:
    result = client("stats", bad)
    assert result.returncode == 2
    assert "usage: pistatsd-client stats" in result.stderr
    assert "Traceback" not in result.stderr


# -- TLS: certificates made here, a small HTTPS + WSS server in a subprocess ---------------


def _pem(*items: ec.EllipticCurvePrivateKey | x509.Certificate) -> bytes:
    out = b""
    for item in items:
        if isinstance(item, x509.Certificate):
            out += item.public_bytes(serialization.Encoding.PEM)
        else:
            out += item.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
    return out


def _serve_tls() -> None:
    """A stand-in for the daemon's TLS side (run by L{TLSServer} in a subprocess):
    C{/stats}, C{/ws/echo} and C{/ws/broadcast} over HTTPS/WSS with the PEM in argv[1]."""
    from autobahn.twisted.resource import WebSocketResource
    from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString
    from twisted.web.server import Site

    class Stats(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            request.setHeader("Content-Type", "application/json")
            return _json({"hostname": "tls-test", "cpu": {"percent": 1.0}})

    class Echo(WebSocketServerProtocol):
        def onMessage(self, payload: bytes, isBinary: bool) -> None:
            self.sendMessage(payload, isBinary)

    class Broadcast(WebSocketServerProtocol):
        def onOpen(self) -> None:
            self.sendMessage(_json({"type": "hello", "interval": 0.1, "history": []}))
            for _ in range(3):
                self.sendMessage(_json(MESSAGE))

    def websocket(protocol: type[WebSocketServerProtocol]) -> WebSocketResource:
        factory = WebSocketServerFactory()
        factory.protocol = protocol
        return WebSocketResource(factory)

    root, ws = Resource(), Resource()
    root.putChild(b"stats", Stats())
    root.putChild(b"ws", ws)
    ws.putChild(b"echo", websocket(Echo))
    ws.putChild(b"broadcast", websocket(Broadcast))
    endpoint = serverFromString(reactor, f"ssl:0:interface=127.0.0.1:privateKey={sys.argv[1]}")
    listening = endpoint.listen(Site(root))
    listening.addCallback(lambda port: print(f"listening on {port.getHost().port}", flush=True))
    reactor.run()


class TLSServer(Daemon):
    """L{_serve_tls} in a subprocess, reusing the daemon helper's output handling."""

    def __init__(self, pem: Path) -> None:
        super().__init__()
        self.argv = [
            sys.executable,
            "-c",
            "from tests.integration.test_client import _serve_tls; _serve_tls()",
            str(pem),
        ]
        self.cwd = PROJECT

    def start(self, timeout: float = 30.0) -> TLSServer:
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0, cwd=self.cwd
        )
        self.port = int(self.wait_for("listening on", timeout).split()[-1])
        return self


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two servers: one with a certificate from a private CA (valid for 127.0.0.1 only),
    one self-signed like the daemon's generated certificate; plus an unrelated CA."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key, other_key, leaf_key, self_key = (
        ec.generate_private_key(ec.SECP256R1()) for _ in "1234"
    )
    ca = _certificate(ca_key, "pistatsd test CA", ca_key, "pistatsd test CA", ca=True)
    other = _certificate(other_key, "another CA", other_key, "another CA", ca=True)
    loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    leaf = _certificate(
        leaf_key, "127.0.0.1", ca_key, "pistatsd test CA", ca=False, names=[loopback]
    )
    selfsigned = _certificate(
        self_key, "pi", self_key, "pi", ca=False, names=[x509.DNSName("localhost"), loopback]
    )
    files = {
        "ca": _pem(ca),
        "other-ca": _pem(other),
        "leaf": _pem(leaf_key, leaf, ca),
        "self": _pem(self_key, selfsigned),
        "self-cert": _pem(selfsigned),
    }
    paths = {name: folder / f"{name}.pem" for name in files}
    for name, data in files.items():
        paths[name].write_bytes(data)
    servers = [TLSServer(paths["leaf"]).start(), TLSServer(paths["self"]).start()]
    try:
        yield {
            "ca": str(paths["ca"]),
            "other-ca": str(paths["other-ca"]),
            "self-cert": str(paths["self-cert"]),
            "url": f"https://127.0.0.1:{servers[0].port}",
            "by-name": f"https://localhost:{servers[0].port}",
            "self-url": f"https://localhost:{servers[1].port}",
        }
    finally:
        for tls_server in servers:
            tls_server.stop()


def test_tls_private_ca(tls: dict[str, Any]) -> None:
    """A certificate issued by a private CA: trusted through --cafile naming that CA."""
    result = client("--cafile", tls["ca"], "stats", tls["url"])
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout)["hostname"] == "tls-test"
    result = client("echo", tls["url"], "--cafile", tls["ca"], stdin="over\nwss\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, "over\nwss\n", "")
    result = client("--cafile", tls["ca"], "watch", tls["url"], "--count", "2")
    assert (result.returncode, result.stderr) == (0, "")
    assert [bool(TICK.match(line)) for line in result.stdout.splitlines()] == [True, True]


@pytest.mark.parametrize("command", [["stats"], ["echo"], ["watch", "--count", "1"]])
def test_tls_another_ca(tls: dict[str, Any], command: list[str]) -> None:
    result = client("--cafile", tls["other-ca"], command[0], tls["url"], *command[1:])
    assert (result.returncode, result.stdout) == (1, "")
    line = one_error_line(result.stderr)
    assert line.startswith(f"pistatsd-client: TLS handshake with {tls['url'][8:]} failed: ")
    assert "certificate verify failed" in line, line


@pytest.mark.parametrize("command", [["stats"], ["echo"]])
def test_tls_certificate_for_another_host(tls: dict[str, Any], command: list[str]) -> None:
    result = client("--cafile", tls["ca"], command[0], tls["by-name"], *command[1:])
    assert result.returncode == 1
    assert one_error_line(result.stderr) == (
        f"pistatsd-client: TLS handshake with {tls['by-name'][8:]} failed:"
        " the certificate is not valid for this host"
    )


# -- TLS against the real daemon (--tls with its generated self-signed certificate) -----------


@pytest.fixture(scope="module")
def tls_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    state = tmp_path_factory.mktemp("state")
    daemon = Daemon(
        [
            "--tls",
            "ssl:0:interface=127.0.0.1",
            "--state-dir",
            str(state),
            "--broadcast-interval",
            "0.2",
        ]
    ).start()
    try:
        # Wherever in the state dir the daemon keeps it: the file with a certificate in it.
        [certificate] = [
            path
            for path in state.rglob("*")
            if path.is_file() and b"BEGIN CERTIFICATE" in path.read_bytes()
        ]
        tls_port = daemon.bound_port("tls")
        yield {"url": f"https://127.0.0.1:{tls_port}", "cafile": str(certificate)}
    finally:
        assert daemon.stop() == 0
    assert "Traceback" not in daemon.text()


def test_daemon_tls_cafile(tls_daemon: dict[str, str]) -> None:
    url, cafile = tls_daemon["url"], tls_daemon["cafile"]
    result = client("--cafile", cafile, "stats", url, "--interval", "0.2")
    assert (result.returncode, result.stderr) == (0, "")
    assert "cpu" in json.loads(result.stdout)
    result = client("--cafile", cafile, "sum", url.replace("127.0.0.1", "localhost"), "1", "2")
    assert (result.returncode, result.stdout, result.stderr) == (0, "Sum: 3\n", "")
    result = client("--cafile", cafile, "sum", url, "--post", "4", "5")
    assert (result.returncode, result.stdout, result.stderr) == (0, "Sum: 9\n", "")
    result = client("--cafile", cafile, "echo", url, stdin="one\ntwo\nthree\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, "one\ntwo\nthree\n", "")
    result = client("--cafile", cafile, "watch", url, "--count", "2")
    assert (result.returncode, result.stderr) == (0, "")
    assert [bool(TICK.match(line)) for line in result.stdout.splitlines()] == [True, True]


def test_daemon_tls_wss_urls(tls_daemon: dict[str, str]) -> None:
    """C{wss://host:port/ws/...} as pasted from a browser means the daemon's HTTPS side."""
    wss, cafile = tls_daemon["url"].replace("https://", "wss://"), tls_daemon["cafile"]
    result = client("--cafile", cafile, "echo", wss + "/ws/echo", stdin="one\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, "one\n", "")
    result = client("--cafile", cafile, "sum", wss + "/ws/broadcast/", "1", "2")
    assert (result.returncode, result.stdout, result.stderr) == (0, "Sum: 3\n", "")
    result = client("--cafile", cafile, "watch", wss, "--count", "1")
    assert (result.returncode, result.stderr) == (0, "")
    assert TICK.match(result.stdout.rstrip("\n")), result.stdout


def test_daemon_tls_insecure(tls_daemon: dict[str, str]) -> None:
    warning = "pistatsd-client: warning: --insecure: the server's certificate is not checked\n"
    result = client("--insecure", "stats", tls_daemon["url"])
    assert (result.returncode, result.stderr) == (0, warning)
    assert "cpu" in json.loads(result.stdout)
    result = client("--insecure", "echo", tls_daemon["url"], stdin="a\nb\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, "a\nb\n", warning)
    result = client("watch", tls_daemon["url"], "--insecure", "--count", "1")
    assert (result.returncode, result.stderr) == (0, warning)
    assert TICK.match(result.stdout.rstrip("\n"))


@pytest.mark.parametrize("command", [["stats"], ["sum", "1"], ["echo"], ["watch", "--count", "1"]])
def test_daemon_tls_untrusted_without_cafile(
    tls_daemon: dict[str, str], command: list[str]
) -> None:
    url = tls_daemon["url"]
    result = client(command[0], url, *command[1:])
    assert (result.returncode, result.stdout) == (1, "")
    assert one_error_line(result.stderr) == (
        f"pistatsd-client: TLS handshake with {url[8:]} failed: certificate verify failed"
        " (use --cafile FILE to trust a private CA or self-signed certificate)"
    )
