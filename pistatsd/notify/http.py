"""One attempt to POST a notification to a webhook or an ntfy server (through treq).

Imported only when a webhook or ntfy notifier is configured, so a daemon
without one never loads treq for notifications.  The answer is read whole
(bounded) so the connection can return to the pool, and sorted: 2xx is
sent; 408, 429, 5xx, timeouts and connection errors are worth a retry;
any other status (a wrong URL, a wrong token) drops the message at once.
Redirects are not followed: a URL that moved is a configuration to fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit, urlunsplit

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

from pistatsd import __version__
from pistatsd.influx.connection import build_client
from pistatsd.influx.writer import (
    HTTPClient,
    describe_failure,
    error_message,
    parse_retry_after,
    read_body,
)
from pistatsd.notify.delivery import Outcome, Verdict
from pistatsd.notify.messages import Message, ntfy_headers, webhook_body
from pistatsd.notify.redact import basic_credentials, redact_url
from pistatsd.notify.settings import NotifierSettings

if TYPE_CHECKING:
    from twisted.web.client import HTTPConnectionPool

#: Seconds to connect, and then to get the answer's headers, and then its body.
HTTP_TIMEOUT = 10.0


def classify(status: int, body: bytes, headers: Headers, now: float) -> Outcome:
    """What an HTTP answer to a notification means."""
    if 200 <= status < 300:
        return Outcome(Verdict.SENT)
    said = error_message(body, headers)[:120]
    detail = f"HTTP {status}" + (f": {said}" if said else "")
    if status in (408, 429) or status >= 500:
        values = headers.getRawHeaders(b"retry-after") or []
        retry_after = parse_retry_after(values[0].decode("latin-1") if values else None, now)
        return Outcome(Verdict.RETRY, detail, retry_after)
    return Outcome(Verdict.DROP, detail)


def split_credentials(url: str) -> tuple[str, str | None]:
    """C{url} without C{user:password@}, and the basic C{Authorization} they stand for.

    Self-hosted ntfy servers and webhook receivers often take basic
    authentication; written in the URL it is sent as a header (treq would
    not), and the URL that travels and is shown carries no credentials.
    """
    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    netloc = parts.netloc.rpartition("@")[2]
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return bare, "Basic " + basic_credentials(parts.username, parts.password or "")


def request_for(settings: NotifierSettings, message: Message) -> tuple[bytes, dict[str, list[str]]]:
    """The body and headers of the POST that carries C{message} to this notifier."""
    headers = {"User-Agent": [f"pistatsd/{__version__}"]}
    if settings.kind == "ntfy":
        body = message.text.encode("utf-8")
        headers["Content-Type"] = ["text/plain; charset=utf-8"]
        for name, value in ntfy_headers(message, settings.priority, settings.tags).items():
            headers[name] = [value]
    else:
        body = webhook_body(message)
        headers["Content-Type"] = ["application/json"]
    basic = split_credentials(settings.target)[1]
    if settings.token is not None:
        headers["Authorization"] = [f"Bearer {settings.token}"]
    elif basic is not None:
        headers["Authorization"] = [basic]
    return body, headers


class HTTPSender:
    """Webhook and ntfy notifications of one notifier, on a connection pool of its own.

    @param http: an injected treq client (tests); by default one is built on
        first use, on a pool that L{close} releases.
    @param scrub: applied to every error text (hides the URL's secrets).
    """

    def __init__(
        self,
        settings: NotifierSettings,
        clock: IReactorTime,
        wall: Callable[[], float],
        scrub: Callable[[str], str],
        http: HTTPClient | None = None,
        timeout: float = HTTP_TIMEOUT,
    ) -> None:
        self.kind: str = settings.kind
        self.target: str = redact_url(settings.target)
        self._settings = settings
        self._url = split_credentials(settings.target)[0]
        self._clock = clock
        self._wall = wall
        self._scrub = scrub
        self._http = http
        self._pool: HTTPConnectionPool | None = None
        self.timeout = timeout

    def _client(self) -> HTTPClient:
        if self._http is None:
            client, self._pool = build_client(self._clock, None, self.timeout)
            self._http = cast(HTTPClient, client)
        return self._http

    def send(self, message: Message) -> Deferred[Outcome]:
        """One POST; never fails (a failure is an L{Outcome} to retry)."""
        body, headers = request_for(self._settings, message)
        timeout = self.timeout

        def answered(response: IResponse) -> Deferred[Outcome]:
            status = response.code
            d = read_body(response, self._clock, timeout)
            return d.addCallback(lambda got: classify(status, got, response.headers, self._wall()))

        def failed(failure: Failure) -> Outcome:
            return Outcome(Verdict.RETRY, describe_failure(failure, timeout))

        def clean(outcome: Outcome) -> Outcome:
            return Outcome(outcome.verdict, self._scrub(outcome.detail), outcome.retry_after)

        try:
            d = self._client().request(
                "POST",
                self._url,
                data=body,
                headers=headers,
                timeout=timeout,
                reactor=self._clock,
                allow_redirects=False,
                unbuffered=True,
            )
        except Exception:
            return succeed(failed(Failure())).addCallback(clean)
        return d.addCallback(answered).addErrback(failed).addCallback(clean)

    def close(self) -> Deferred[None]:
        """Close the pool's idle connections (at shutdown)."""
        pool = self._pool
        if pool is None:
            return succeed(None)
        self._pool = self._http = None
        return pool.closeCachedConnections()
