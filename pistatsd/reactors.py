"""One name for the whole reactor: every reactor interface pistatsd relies on.

Twisted declares each side of a reactor (time, TCP, TLS, processes, threads...)
as its own interface, and a type cannot say "all of these" otherwise.  The
composition root (and the client's C{main}) receives one reactor and hands
each part only the side it needs; L{IPistatsdReactor} is the type of that one
reactor.  Only the type checker sees it: no reactor declares it, so it is never
used for adaptation or C{providedBy}, and L{global_reactor} is where the real
one is given this type.
"""

from __future__ import annotations

from typing import cast

from twisted.internet.interfaces import (
    IReactorCore,
    IReactorFDSet,
    IReactorPluggableNameResolver,
    IReactorProcess,
    IReactorSSL,
    IReactorTCP,
    IReactorThreads,
    IReactorTime,
)


class IPistatsdReactor(
    IReactorCore,
    IReactorTime,
    IReactorTCP,
    IReactorSSL,
    IReactorProcess,
    IReactorThreads,
    IReactorPluggableNameResolver,
    IReactorFDSet,
):
    """The reactors pistatsd runs on (Twisted's default on Linux, or a test's fake)."""


def global_reactor() -> IPistatsdReactor:
    """Twisted's global reactor, installing the default one if none was installed yet."""
    from twisted.internet import reactor

    # The default reactor on Linux (epoll) provides every interface above.
    return cast(IPistatsdReactor, reactor)


def stored_only() -> IPistatsdReactor:
    """A stand-in for a reactor that is only stored, never called: for start-up checks.

    The options are checked by building what they describe (an endpoint
    keeps its reactor for later) before any reactor is installed: the
    C{pistatsd} command installs its own once they are read
    (L{pistatsd.twistd_command}).  Asking for the global one here would
    install Twisted's default instead.
    """
    return cast(IPistatsdReactor, object())
