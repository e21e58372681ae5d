"""The HTTP client the reporter owns: one quiet, persistent connection pool.

Twisted's client factories are I{noisy}: every connection logs "Starting
factory" when it opens and "Stopping factory" when it closes.  The reporter
opens one connection per report (the pool's idle timeout is shorter than
the report interval, on purpose), so at the defaults that is 2 880 lines a
day saying nothing, written to an SD card.  The pool here builds its
connections with a factory that keeps quiet; everything else is Twisted's.
"""

from __future__ import annotations

from treq.client import HTTPClient as TreqClient
from twisted.internet.interfaces import IReactorTime
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    _HTTP11ClientFactory,
)
from twisted.web.iweb import IPolicyForHTTPS

__all__ = ["IDLE_TIMEOUT", "QuietConnectionPool", "build_client"]

IDLE_TIMEOUT = 50
"""Seconds a pooled connection may stay idle: shorter than the idle timeout
of most servers and proxies, so a pooled connection is rarely found closed
by the other side."""


class _QuietHTTP11ClientFactory(_HTTP11ClientFactory):
    """Twisted's HTTP/1.1 client factory, without a log line per connection."""

    noisy = False


class QuietConnectionPool(HTTPConnectionPool):
    """An C{HTTPConnectionPool} whose connections open and close without logging.

    C{_factory} is the pool's documented hook for the factory it connects
    with; only its C{noisy} flag differs from Twisted's own.
    """

    _factory = _QuietHTTP11ClientFactory


def build_client(
    clock: IReactorTime, tls_policy: IPolicyForHTTPS | None, connect_timeout: float
) -> tuple[TreqClient, QuietConnectionPool]:
    """A treq client on a pool of its own, and that pool (to close at shutdown).

    One connection per host at most (the reporter sends one request at a
    time), no automatic retries (the reporter decides what to retry), and
    connection attempts bounded by C{connect_timeout} on C{clock}.
    """
    pool = QuietConnectionPool(clock, persistent=True)
    pool.maxPersistentPerHost = 1
    pool.retryAutomatically = False
    pool.cachedConnectionTimeout = IDLE_TIMEOUT
    agent = Agent(
        clock,
        contextFactory=tls_policy or BrowserLikePolicyForHTTPS(),
        connectTimeout=connect_timeout,
        pool=pool,
    )
    return TreqClient(agent), pool
