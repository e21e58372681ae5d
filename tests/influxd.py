"""InfluxDB for tests: an in-memory fake (for StubTreq) and a real C{influxd} in a temp dir.

The fake answers like InfluxDB 1.x (204 on writes, JSON errors) and can be
told to answer anything else, to stall, or (through L{FakeNetwork}) to refuse
connections.  The real one runs C{/usr/bin/influxd} on loopback ports it
picks itself, with everything in a temporary directory; readiness and every
wait are polled against a deadline, never slept.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from attrs import define, field
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from tests.real import require_program

# -- in memory -----------------------------------------------------------------


@define
class Reply:
    """One scripted answer."""

    status: int = 204
    body: bytes = b""
    headers: dict[str, str] = field(factory=dict)


def error(status: int, message: str, **headers: str) -> Reply:
    """An InfluxDB 1.x style error answer."""
    body = json.dumps({"error": message}).encode()
    return Reply(status, body, {"Content-Type": "application/json", **headers})


@define
class Seen:
    """One request the fake received."""

    path: str
    args: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def lines(self) -> list[str]:
        """The line-protocol lines of a write."""
        return self.body.decode("utf-8").splitlines()


class FakeInflux(Resource):
    """A scriptable InfluxDB: scripted replies first, then C{default}.

    C{max_lines}: writes with more lines get a 413, like a server with a
    small C{max-body-size}.  C{hang}: requests are kept unanswered (see
    C{stalled}).  Delivered lines (2xx writes) accumulate in C{written}.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Seen] = []
        self.script: deque[Reply | Callable[[Seen], Reply]] = deque()
        self.default: Reply | Callable[[Seen], Reply] = Reply(204)
        self.max_lines: int | None = None
        self.hang = False
        self.stalled: list[Request] = []
        self.written: list[str] = []

    def render_POST(self, request: Request) -> bytes | int:
        assert request.content is not None
        seen = Seen(
            path=request.path.decode(),
            args={k.decode(): v[0].decode() for k, v in request.args.items()},
            headers={
                k.decode().lower(): v[0].decode()
                for k, v in request.requestHeaders.getAllRawHeaders()
            },
            body=request.content.read(),
        )
        self.seen.append(seen)
        if self.hang:
            self.stalled.append(request)
            return NOT_DONE_YET
        if self.max_lines is not None and len(seen.lines) > self.max_lines:
            reply: Reply | Callable[[Seen], Reply] = error(413, "Request Entity Too Large")
        else:
            reply = self.script.popleft() if self.script else self.default
        if callable(reply):
            reply = reply(seen)
        if 200 <= reply.status < 300 and seen.path.endswith("/write"):
            self.written.extend(seen.lines)
        request.setResponseCode(reply.status)
        for name, value in reply.headers.items():
            request.setHeader(name, value)
        return reply.body

    @property
    def writes(self) -> list[Seen]:
        """The write requests received (answered or not)."""
        return [s for s in self.seen if s.path.endswith("/write")]


class FakeNetwork:
    """StubTreq in front of a L{FakeInflux}, which can also refuse connections.

    Records the keyword arguments of every request, so tests can check that
    timeouts and the reactor are passed explicitly.
    """

    def __init__(self, fake: FakeInflux) -> None:
        self.fake = fake
        self.stub = StubTreq(fake)
        self.refusing = False
        self.calls: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Deferred[Any]:
        self.calls.append({"method": method, "url": url, **kwargs})
        if self.refusing:
            return fail(ConnectionRefusedError("Connection refused"))
        return self.stub.request(method, url, **kwargs)


def capture_all_logs(case: SynchronousTestCase) -> list[LogEvent]:
    """Every log event (any namespace) for the rest of the test."""
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    case.addCleanup(globalLogPublisher.removeObserver, events.append)
    return events


def rendered(events: list[LogEvent]) -> str:
    """All events as text, tracebacks included: what a log file would hold."""
    parts = []
    for event in events:
        parts.append(formatEvent(event))
        if "log_failure" in event:
            parts.append(event["log_failure"].getTraceback())
        parts.append(repr({k: v for k, v in event.items() if k != "log_logger"}))
    return "\n".join(parts)


def wait_until(
    check: Callable[[], Any],
    timeout: float,
    what: str,
    *,
    pace: subprocess.Popen[bytes],
    step: float = 0.1,
    details: Callable[[], str] = lambda: "",
) -> Any:
    """Poll C{check()} until it returns something truthy; fail after C{timeout} seconds.

    Between checks it blocks on C{pace}, a process that must stay alive
    (influxd, or the daemon while influxd is down), for at most C{step}: a
    crash ends the wait at once with a clear error instead of a timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {what} within {timeout}s (last: {last!r})\n{details()}")
        try:
            code = pace.wait(min(step, remaining))
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"{pace.args[0]} exited with {code} while waiting for {what}")


# -- certificates -------------------------------------------------------------------


@define
class CertificateFiles:
    """A private CA and a server certificate it signed, as PEM files."""

    ca: str
    cert: str
    key: str


def make_pki(
    directory: str, names: tuple[str, ...] = ("localhost",), ips=("127.0.0.1",)
) -> CertificateFiles:
    """Write C{ca.pem}, C{server.pem} and C{server.key} (for those names) into C{directory}."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("pistatsd test CA"))
        .issuer_name(name("pistatsd test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(names[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki = CertificateFiles(
        ca=os.path.join(directory, "ca.pem"),
        cert=os.path.join(directory, "server.pem"),
        key=os.path.join(directory, "server.key"),
    )
    with open(pki.ca, "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(pki.cert, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(pki.key, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return pki


# -- the real thing --------------------------------------------------------------------

CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:0"

[meta]
  dir = "{root}/meta"
  logging-enabled = false

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
  trace-logging-enabled = false

[retention]
  enabled = false

[shard-precreation]
  enabled = false

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false
  log-enabled = false

[subscriber]
  enabled = false

[logging]
  # "info" for the "Listening on HTTP" line, which has the port really bound.
  level = "info"

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = {auth}
  log-enabled = false
  max-body-size = {max_body_size}
  https-enabled = {https}
  https-certificate = "{cert}"
  https-private-key = "{key}"
"""


#: influxd's line for its HTTP listener, with the port the kernel chose for C{:0}.
_LISTENING = re.compile(r'msg="Listening on HTTP".*\baddr=127\.0\.0\.1:(\d+)')


class Influxd:
    """C{influxd -config <tmp>} on loopback; data survives L{stop}/L{start}.

    The first start takes a port the kernel picks (read back from the log);
    later starts come back on that same port, so daemons pointed at L{url}
    find it again.

    Every wait is bounded by a deadline and paced by blocking on the
    process itself (C{Popen.wait} with a short timeout): a crash ends the
    wait at once, and nothing ever sleeps blindly.
    """

    def __init__(
        self,
        root: str,
        *,
        auth: bool = False,
        max_body_size: int = 25_000_000,
        tls: CertificateFiles | None = None,
    ) -> None:
        self.program = require_program("influxd")
        self.tls = tls
        self.root = root
        self.http_port: int | None = None
        self.config_path = os.path.join(root, "influxdb.conf")
        self.log_path = os.path.join(root, "influxd.log")
        self._settings = {
            "root": root,
            "auth": "true" if auth else "false",
            "max_body_size": max_body_size,
            "https": "true" if tls else "false",
            "cert": tls.cert if tls else "",
            "key": tls.key if tls else "",
        }
        self._write_config(0)
        self.proc: subprocess.Popen[bytes] | None = None
        self.auth: tuple[str, str] | None = None

    def _write_config(self, http_port: int) -> None:
        with open(self.config_path, "w") as f:
            f.write(CONFIG.format(http_port=http_port, **self._settings))

    def _logged_port(self) -> int | None:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                match = _LISTENING.search(f.read())
        except OSError:
            return None
        return int(match[1]) if match else None

    @property
    def url(self) -> str:
        """The base URL to give C{--influx} (C{https://localhost} with TLS)."""
        if self.tls is not None:
            return f"https://localhost:{self.http_port}"
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 30.0) -> Influxd:
        """Start and wait until C{/ping} answers 204."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.program, "-config", self.config_path],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        if self.http_port is None:
            self.http_port = self.wait_until(self._logged_port, timeout, "influxd's HTTP port")
            self._write_config(self.http_port)
        self.wait_until(self._pings, timeout, "influxd answering /ping")
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, wait for the exit (SIGKILL if it takes longer than C{timeout})."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def wait_until(
        self, check: Callable[[], Any], timeout: float, what: str, step: float = 0.1
    ) -> Any:
        """Poll C{check()} until it returns something truthy, paced by influxd itself."""
        assert self.proc is not None
        return wait_until(check, timeout, what, pace=self.proc, step=step, details=self.log)

    def _pings(self) -> bool:
        try:
            status, _ = self.request("GET", "/ping")
        except OSError:
            return False
        return status == 204

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """One request with a short timeout; with basic auth once L{auth} is set."""
        headers = dict(headers or {})
        if self.auth is not None:
            pair = f"{self.auth[0]}:{self.auth[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        conn: http.client.HTTPConnection
        if self.tls is not None:
            import ssl

            context = ssl.create_default_context(cafile=self.tls.ca)
            conn = http.client.HTTPSConnection(
                "localhost", self.http_port, timeout=2, context=context
            )
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=2)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def query(self, q: str, db: str | None = None) -> dict[str, Any]:
        """Run InfluxQL; the decoded JSON answer."""
        params = {"q": q, **({"db": db} if db else {})}
        status, body = self.request(
            "POST",
            "/query",
            urlencode(params).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert status == 200, (status, body)
        return json.loads(body)

    def values(self, q: str, db: str = "math_server") -> list[list[Any]]:
        """The rows of a one-series answer ([] when there are none, or no database yet)."""
        try:
            answer = self.query(q, db)
        except OSError:
            return []
        result = answer["results"][0]
        series = result.get("series") or []
        return series[0]["values"] if series else []

    def sum_of(self, field_name: str, measurement: str, db: str = "math_server") -> int | None:
        """C{SELECT sum(field) FROM measurement}, or None when nothing is there yet."""
        rows = self.values(f'SELECT sum("{field_name}") FROM "{measurement}"', db)
        return int(rows[0][1]) if rows else None

    def log(self) -> str:
        """influxd's own output so far."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""
