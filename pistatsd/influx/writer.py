"""One HTTP exchange with InfluxDB: where to write, how to authenticate, what the answer means.

The reporter decides I{when} to send and what to do next; this module sends
one request and turns whatever comes back (a status, a body, a transport
error, a timeout) into an L{Outcome}: delivered, split the batch, rejected
for good, or retry later.  It never raises and never lets a secret through:
credentials travel in a header built here, never in a URL, and every message
that leaves this module (for the log, C{/health}, C{last_error}) is scrubbed
of the password and the token, in clear and base64-encoded.
"""

from __future__ import annotations

import base64
import email.utils
import enum
import json
import re
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import urlencode, urlsplit, urlunsplit

from attrs import evolve, field, frozen
from twisted.internet.defer import CancelledError, Deferred, TimeoutError, succeed
from twisted.internet.error import ConnectError, ConnectionRefusedError, DNSLookupError
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import Protocol as _Protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS, IResponse
from zope.interface import implementer

from pistatsd import __version__
from pistatsd.influx.lineprotocol import PRECISION

if TYPE_CHECKING:
    # Public in spirit (what trustRootFromCertificates returns), not exported.
    from twisted.internet._sslverify import IOpenSSLTrustRoot

BODY_LIMIT = 64 * 1024
"""Bytes of a response body kept (InfluxDB's error messages are a few hundred
bytes; a proxy's HTML page need not be buffered whole)."""

RETRY_AFTER_LIMIT = 3600.0
"""A C{Retry-After} beyond an hour is taken as an hour: a bad header must not
silence reporting for days."""

MESSAGE_LIMIT = 200


class HTTPClient(Protocol):
    """The part of C{treq.client.HTTPClient} (or C{treq.testing.StubTreq}) used here."""

    def request(self, method: str, url: str, **kwargs: Any) -> Deferred[IResponse]:
        """Send one request (keyword arguments as treq takes them); fires with a response."""


class Verdict(enum.Enum):
    """What to do with a batch after one attempt."""

    DELIVERED = "delivered"
    SPLIT = "split"
    """413: the batch is too large for the server; send smaller ones."""
    REJECTED = "rejected"
    """A 4xx other than 408/413/429: sending it again cannot help; drop and count."""
    RETRY = "retry"
    """5xx, 408, 429, timeouts, refused or broken connections: try again later."""


@frozen
class Outcome:
    """The meaning of one exchange, with a short, secret-free message."""

    verdict: Verdict
    status: int | None = None
    message: str = ""
    retry_after: float | None = None
    partially_dropped: int | None = None
    """For a 400 "partial write": how many points InfluxDB says it dropped."""
    database_not_found: bool = False


@frozen
class InfluxTarget:
    """Where and how to write: URLs, authentication, and the secrets to scrub.

    v2 mode (C{/api/v2/write}, C{Authorization: Token}) when a token is set,
    v1 (C{/write?db=}, basic auth when a user is set) otherwise.  Credentials
    written into the URL itself are stripped (and ignored: they would end up
    in process listings and logs); L{display_url} is the URL to show.
    """

    base_url: str
    api: str
    database: str
    authorization: str | None = field(repr=False)
    org: str | None = None
    bucket: str | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)
    url_had_credentials: bool = False

    @classmethod
    def build(
        cls,
        url: str,
        *,
        database: str = "math_server",
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        org: str | None = None,
        bucket: str | None = None,
    ) -> InfluxTarget:
        """The target for a base URL and the options; see the class docstring."""
        parts = urlsplit(url)
        url_secrets = [s for s in (parts.username, parts.password) if s]
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port is not None:
            netloc += f":{parts.port}"
        base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        secrets: list[str] = [*url_secrets]
        if token:
            authorization: str | None = f"Token {token}"
            secrets += [token]
            api = "v2"
        elif user:
            pair = f"{user}:{password or ''}"
            encoded = base64.b64encode(pair.encode("utf-8")).decode("ascii")
            authorization = f"Basic {encoded}"
            secrets += [encoded] + ([password] if password else [])
            api = "v1"
        else:
            authorization = None
            api = "v1"
        return cls(
            base_url=base,
            api=api,
            database=database,
            authorization=authorization,
            org=org,
            bucket=bucket or database,
            secrets=tuple(s for s in secrets if len(s) >= 3),
            url_had_credentials=bool(url_secrets),
        )

    @property
    def display_url(self) -> str:
        """The base URL, without credentials: safe for logs and C{/health}."""
        return self.base_url

    def write_url(self) -> str:
        """Where batches are POSTed, with the precision passed explicitly."""
        if self.api == "v2":
            query = {"bucket": self.bucket or self.database, "precision": PRECISION}
            if self.org:
                query = {"org": self.org, **query}
            return f"{self.base_url}/api/v2/write?{urlencode(query)}"
        return f"{self.base_url}/write?{urlencode({'db': self.database, 'precision': PRECISION})}"

    def query_url(self) -> str:
        """The v1 query endpoint (for C{CREATE DATABASE})."""
        return f"{self.base_url}/query"

    def write_request(self, lines: Sequence[str]) -> tuple[str, bytes, dict[str, list[str]]]:
        """URL, body and headers that write C{lines} (line protocol)."""
        body = "".join(line + "\n" for line in lines).encode("utf-8")
        return self.write_url(), body, self.headers("text/plain; charset=utf-8")

    def create_database_request(self) -> tuple[str, bytes, dict[str, list[str]]]:
        """URL, body and headers of the v1 C{CREATE DATABASE} for L{database}."""
        body = urlencode({"q": create_database_statement(self.database)}).encode("ascii")
        return self.query_url(), body, self.headers("application/x-www-form-urlencoded")

    def headers(self, content_type: str) -> dict[str, list[str]]:
        """Request headers, with the credentials."""
        headers = {
            "Content-Type": [content_type],
            "User-Agent": [f"pistatsd/{__version__}"],
        }
        if self.authorization is not None:
            headers["Authorization"] = [self.authorization]
        return headers

    def scrub(self, text: str) -> str:
        """C{text} with every secret replaced by C{***}."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def create_database_statement(database: str) -> str:
    """C{CREATE DATABASE "name"} with the identifier quoted and escaped."""
    escaped = database.replace("\\", "\\\\").replace('"', '\\"')
    return f'CREATE DATABASE "{escaped}"'


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a C{Retry-After} header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - now
    if seconds != seconds:  # NaN
        return None
    return min(max(0.0, seconds), RETRY_AFTER_LIMIT)


_DROPPED = re.compile(r"dropped=(\d+)")


def error_message(body: bytes, headers: Headers | None = None) -> str:
    """InfluxDB's own words: C{{"error": ...}} (v1), C{{"message": ...}} (v2),
    C{X-Influxdb-Error}, else the start of the body."""
    text = ""
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        document = None
    if isinstance(document, dict):
        for key in ("error", "message"):
            if isinstance(document.get(key), str):
                text = document[key]
                break
    if not text and headers is not None:
        values = headers.getRawHeaders(b"x-influxdb-error") or []
        text = values[0].decode("utf-8", "replace") if values else ""
    if not text:
        text = body.decode("utf-8", "replace").strip()
    return " ".join(text.split())


def classify(status: int, body: bytes, headers: Headers | None, now: float) -> Outcome:
    """The meaning of an HTTP answer to a write (or a C{CREATE DATABASE})."""
    if 200 <= status < 300:
        return Outcome(Verdict.DELIVERED, status)
    message = error_message(body, headers)
    retry_after = None
    if headers is not None:
        values = headers.getRawHeaders(b"retry-after") or []
        retry_after = parse_retry_after(values[0].decode("latin-1") if values else None, now)
    described = f"HTTP {status}" + (f": {message}" if message else "")
    if status == 413:
        return Outcome(Verdict.SPLIT, status, described)
    if status in (408, 429) or status >= 500:
        return Outcome(Verdict.RETRY, status, described, retry_after)
    partial = None
    if status == 400 and "partial write" in message:
        match = _DROPPED.search(message)
        partial = int(match.group(1)) if match else None
    return Outcome(
        Verdict.REJECTED,
        status,
        described,
        partially_dropped=partial,
        database_not_found=status == 404 and "database not found" in message,
    )


def describe_failure(failure: Failure, timeout: float) -> str:
    """A transport failure in a few words (no headers, no URL with credentials).

    Agent wraps the interesting error (a timeout's cancellation, a TLS
    verification failure) in C{ResponseNeverReceived}/C{ResponseFailed}:
    look inside.
    """
    inner = [r for r in getattr(failure.value, "reasons", None) or [] if isinstance(r, Failure)]
    for candidate in [failure, *inner]:
        if candidate.check(CancelledError, TimeoutError):
            return f"no answer within {timeout:g} s"
        if candidate.check(ConnectionRefusedError):
            return "connection refused"
        if candidate.check(DNSLookupError):
            return "host name not found"
    if failure.check(ConnectError):
        return _short(failure.value)
    if inner:
        return f"{failure.value.__class__.__name__}: {_short(inner[0].value)}"
    return _short(failure.value)


def _short(error: object) -> str:
    text = str(error) or error.__class__.__name__
    if not text.startswith(error.__class__.__name__):
        text = f"{error.__class__.__name__}: {text}"
    return text


class _BodyReader(_Protocol):
    """Reads a response body (so the connection can go back to the pool), up to
    a limit; cancelling the read aborts the connection, so a server that sends
    headers and then stalls cannot hold the reporter."""

    def __init__(self, limit: int) -> None:
        self.done: Deferred[bytes] = Deferred(self._cancel)
        self._parts: list[bytes] = []
        self._kept = 0
        self._limit = limit

    def dataReceived(self, data: bytes) -> None:
        if self._kept < self._limit:
            piece = data[: self._limit - self._kept]
            self._parts.append(piece)
            self._kept += len(piece)

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        if self.done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self._parts))
        else:
            self.done.errback(reason)

    def _cancel(self, d: Deferred[bytes]) -> None:
        if self.transport is not None:
            # deliverBody connects the reader to a producer (TransportProxyProducer)
            cast(IPushProducer, self.transport).stopProducing()


def read_body(response: IResponse, clock: IReactorTime, timeout: float) -> Deferred[bytes]:
    """The response body (first L{BODY_LIMIT} bytes), bounded in time."""
    if response.length == 0:
        return succeed(b"")
    reader = _BodyReader(BODY_LIMIT)
    response.deliverBody(reader)
    return reader.done.addTimeout(timeout, clock)


def post(
    http: HTTPClient,
    clock: IReactorTime,
    url: str,
    body: bytes,
    headers: dict[str, list[str]],
    timeout: float,
    scrub: Callable[[str], str] | None = None,
    wall: Callable[[], float] = time.time,
) -> Deferred[Outcome]:
    """POST C{body}, read the answer, classify it; never fails.

    treq's C{timeout} covers the wait for the response headers (on the
    injected clock); the body read has its own bound.  Cancelling the
    returned Deferred cancels whichever of the two is in progress.
    """
    scrub = scrub or (lambda text: text)

    def answered(response: IResponse) -> Deferred[Outcome]:
        status = response.code
        d = read_body(response, clock, timeout)
        return d.addCallback(lambda body: classify(status, body, response.headers, wall()))

    def failed(failure: Failure) -> Outcome:
        return Outcome(Verdict.RETRY, None, scrub(describe_failure(failure, timeout)))

    def limit(outcome: Outcome) -> Outcome:
        message = scrub(outcome.message)
        if len(message) > MESSAGE_LIMIT:
            message = message[: MESSAGE_LIMIT - 1] + "…"
        return evolve(outcome, message=message)

    try:
        d = http.request(
            "POST",
            url,
            data=body,
            headers=headers,
            timeout=timeout,
            reactor=clock,
            allow_redirects=False,
            unbuffered=True,
        )
    except Exception:
        return succeed(failed(Failure())).addCallback(limit)
    return d.addCallback(answered).addErrback(failed).addCallback(limit)


@implementer(IPolicyForHTTPS)
@frozen
class PrivateCAPolicy:
    """Verify InfluxDB's certificate against a private CA (and its host name, as always)."""

    trust: IOpenSSLTrustRoot

    def creatorForNetloc(self, hostname: bytes, port: int) -> IOpenSSLClientConnectionCreator:
        """TLS options for one connection, checking the name we connected to."""
        from twisted.internet.ssl import optionsForClientTLS

        return optionsForClientTLS(hostname.decode("idna"), trustRoot=self.trust)


def tls_policy_for_cafile(cafile: str) -> PrivateCAPolicy:
    """An HTTPS policy trusting only the CAs in C{cafile} (an C{--influx-cafile}).

    Read once at start-up, so a broken file stops the daemon with its name
    rather than failing every write for months.

    @raise ValueError: the file holds no certificate or one that does not parse.
    @raise OSError: the file cannot be read.
    """
    # pyOpenSSL only for an https:// InfluxDB (pistatsd.footprint).
    from pistatsd.pem import load_certificates, trust_root

    with open(cafile, "rb") as f:
        pem = f.read()
    return PrivateCAPolicy(trust_root(load_certificates(pem)))
