"""The HTTP client the reporter owns: one persistent connection pool."""

from __future__ import annotations

from treq.client import HTTPClient as TreqClient
from twisted.internet.interfaces import IReactorTime
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool
from twisted.web.iweb import IPolicyForHTTPS

__all__ = ["IDLE_TIMEOUT", "build_client"]

IDLE_TIMEOUT = 50
"""Seconds a pooled connection may stay idle: shorter than the idle timeout
of most servers and proxies, so a pooled connection is rarely found closed
by the other side."""


def build_client(
    clock: IReactorTime, tls_policy: IPolicyForHTTPS | None, connect_timeout: float
) -> tuple[TreqClient, HTTPConnectionPool]:
    """A treq client on a pool of its own, and that pool (to close at shutdown).

    One connection per host at most (the reporter sends one request at a
    time), no automatic retries (the reporter decides what to retry), and
    connection attempts bounded by C{connect_timeout} on C{clock}.
    """
    pool = HTTPConnectionPool(clock, persistent=True)
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
