"""C{stats}, C{sum}, C{history} and C{alerts}: one treq request each, bounded by C{--timeout}."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence

import treq
from treq.client import HTTPClient
from twisted.internet.defer import TimeoutError, ensureDeferred
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool

from pistatsd.client.alerts import format_alerts
from pistatsd.client.failures import ClientError
from pistatsd.client.formatting import (
    format_json,
    format_sparklines,
    format_summary,
    format_table,
)
from pistatsd.client.tls import Trust, TrustPolicy
from pistatsd.client.urls import BaseURL
from pistatsd.numbers import plain
from pistatsd.reactors import IPistatsdReactor

Number = int | float
Write = Callable[[str], None]


def http_client(reactor: IPistatsdReactor, trust: Trust, timeout: float) -> HTTPClient:
    """A treq client on the injected reactor that checks certificates as C{trust} says.

    Non-persistent connections: the command makes one request and exits, so
    nothing should stay open behind it.
    """
    pool = HTTPConnectionPool(reactor, persistent=False)
    agent = Agent(reactor, contextFactory=TrustPolicy(trust), connectTimeout=timeout, pool=pool)
    return HTTPClient(agent)


def _error_detail(body: bytes) -> str:
    """The useful part of an error body: the C{error} of a JSON answer, else its first line."""
    text = body.decode("utf-8", "replace").strip()
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        text = document["error"]
    first = text.splitlines()[0] if text else ""
    return first[:200]


def http_error_message(method: str, url: str, code: int, phrase: bytes, body: bytes) -> str:
    """One line for an HTTP error status, with the server's own explanation when it gave one."""
    status = f"HTTP {code} {phrase.decode('latin-1')}".rstrip()
    detail = _error_detail(body)
    return f"{method} {url}: {status}" + (f": {detail}" if detail else "")


def _timed_out(result: object, timeout: float) -> Failure:
    """Whatever the cancelled request failed with (treq wraps it), it was a time-out."""
    return Failure(TimeoutError(f"no answer within {timeout:g} s"))


async def call(
    reactor: IPistatsdReactor,
    client: HTTPClient,
    method: str,
    url: str,
    timeout: float,
    *,
    params: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
    headers: dict[bytes | str, bytes | str] | None = None,
) -> bytes:
    """Send one request and return the whole body of a 2xx/3xx answer.

    The time-out covers connecting, sending, the headers and the body (treq's own
    C{timeout=} covers only the headers, on the global reactor). An error status
    becomes a L{ClientError}.
    """

    async def exchange() -> tuple[int, bytes, bytes]:
        response = await client.request(method, url, params=params, data=body, headers=headers)
        content = await treq.content(response)
        return response.code, response.phrase, content

    pending = ensureDeferred(exchange())
    pending.addTimeout(timeout, reactor, onTimeoutCancel=_timed_out)
    code, phrase, content = await pending
    if code >= 400:
        raise ClientError(http_error_message(method, url, code, phrase, content))
    return content


async def stats(
    reactor: IPistatsdReactor,
    client: HTTPClient,
    base: BaseURL,
    timeout: float,
    write: Write,
    interval: float | None = None,
    summary: bool = False,
) -> None:
    """GET /stats (CPU measured over C{interval} seconds if given) and print it.

    The server holds the answer for C{interval} seconds, so that time is added to
    the time-out rather than counted against it.
    """
    params = None if interval is None else [("interval", plain(interval))]
    url = base.http("/stats")
    content = await call(
        reactor,
        client,
        "GET",
        url,
        timeout + (interval or 0.0),
        params=params,
        headers={"Accept": "application/json"},
    )
    try:
        document = json.loads(content)
    except ValueError:
        raise ClientError(f"GET {url}: the answer is not JSON") from None
    if summary and isinstance(document, dict):
        write(format_summary(document))
    else:
        write(format_json(document))


def argument_names(count: int) -> list[str]:
    """Distinct query-argument names C{a, b, ..., z, aa, ab, ...} (spreadsheet columns)."""
    names = []
    for index in range(count):
        name = ""
        index += 1
        while index:
            index, rest = divmod(index - 1, 26)
            name = chr(ord("a") + rest) + name
        names.append(name)
    return names


async def add(
    reactor: IPistatsdReactor,
    client: HTTPClient,
    base: BaseURL,
    timeout: float,
    write: Write,
    numbers: Sequence[Number],
    post: bool = False,
) -> None:
    """Ask /sum to add C{numbers} (query string, or a JSON object with C{post}) and print
    the server's answer (C{Sum: 6})."""
    named = list(zip(argument_names(len(numbers)), numbers, strict=True))
    url = base.http("/sum")
    headers: dict[bytes | str, bytes | str] = {"Accept": "text/plain"}
    if post:
        body = json.dumps(dict(named)).encode("utf-8")
        headers["Content-Type"] = "application/json"
        content = await call(reactor, client, "POST", url, timeout, body=body, headers=headers)
    else:
        params = [(name, repr(number)) for name, number in named]
        content = await call(reactor, client, "GET", url, timeout, params=params, headers=headers)
    write(content.decode("utf-8", "replace").rstrip("\r\n"))


async def history(
    reactor: IPistatsdReactor,
    client: HTTPClient,
    base: BaseURL,
    timeout: float,
    write: Write,
    names: Sequence[str],
    since: float,
    points: int,
    table: bool = False,
    now: float | None = None,
) -> None:
    """GET /stats/series for the last C{since} seconds and print a sparkline per series
    (or, with C{table}, one row per point).

    @param now: the end of the range, epoch seconds; this machine's clock by default.
    """
    end = time.time() if now is None else now
    start = max(0.0, end - since)
    params = [
        ("names", ",".join(names)),
        ("from", plain(round(start, 3))),
        ("to", plain(round(end, 3))),
        ("points", str(points)),
    ]
    url = base.http("/stats/series")
    content = await call(
        reactor, client, "GET", url, timeout, params=params, headers={"Accept": "application/json"}
    )
    try:
        document = json.loads(content)
    except ValueError:
        raise ClientError(f"GET {url}: the answer is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("values"), dict):
        raise ClientError(f"GET {url}: the answer is not a series answer")
    lines = (format_table if table else format_sparklines)(document, list(names))
    for line in lines:
        write(line)


async def alerts(
    reactor: IPistatsdReactor,
    client: HTTPClient,
    base: BaseURL,
    timeout: float,
    write: Write,
    now: float | None = None,
) -> None:
    """GET /api/alerts and print one row per alert, the firing ones first."""
    url = base.http("/api/alerts")
    content = await call(
        reactor, client, "GET", url, timeout, headers={"Accept": "application/json"}
    )
    try:
        document = json.loads(content)
    except ValueError:
        raise ClientError(f"GET {url}: the answer is not JSON") from None
    try:
        lines = format_alerts(document, now)
    except ClientError as e:
        raise ClientError(f"GET {url}: {e}") from None
    for line in lines:
        write(line)
