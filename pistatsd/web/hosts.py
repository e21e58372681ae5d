"""Which C{Host} names pistatsd answers to: the defence against DNS rebinding.

A web page can point a name it owns at 127.0.0.1 (or at this machine's
LAN address) once the browser has loaded it; from then on the browser
treats pistatsd as that page's own origin and lets it read the API, change
sensors and open WebSockets.  The request still carries the page's name in
C{Host}, so serving only known names stops it: loopback names and addresses,
this machine's own names and addresses, the hosts of C{--allowed-origin} and
C{--allowed-host}.  Anything else is answered C{421 Misdirected Request}.

Every request asks, so the answer is cached per raw C{Host} value (a bounded
dict: one lookup on the hot path).  The machine's addresses change (DHCP), so
an unknown name re-reads them, at most once per C{refresh_after} seconds;
the fully qualified name may need DNS and is looked up in a thread.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

from attrs import frozen
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from pistatsd.web.machine import fqdn_names, machine_names
from pistatsd.ws.origins import pattern_host

_log = Logger()

T = TypeVar("T")

_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*")


class HostVerdict(enum.Enum):
    """What to do with a request's C{Host}."""

    ALLOWED = "allowed"
    #: Well-formed but not ours: 421.
    UNKNOWN = "unknown"
    #: Not a host name at all: 400.
    INVALID = "invalid"


def _ipv6(text: str) -> str:
    address = ipaddress.IPv6Address(text.split("%", 1)[0])
    mapped = address.ipv4_mapped
    return str(mapped) if mapped is not None else address.compressed


def normalise_name(text: str) -> str:
    """A DNS name or IPv4 address as compared here: lower case, IDN as punycode, no final dot.

    Raises C{ValueError} for anything that is not a host name.
    """
    if text.endswith("."):
        text = text[:-1]
    if not text:
        raise ValueError("empty host name")
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        pass
    # The idna codec turns U-labels into A-labels and checks label lengths.
    name = text.encode("idna").decode("ascii").lower()
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a host name: {text!r}")
    return name


def host_name(value: bytes | str) -> str:
    """The host of a C{Host} value (C{name}, C{name:port}, C{[v6]:port}), normalised; port dropped.

    Raises C{ValueError} when the value is not a host and optional port.
    """
    text = value.decode("utf-8") if isinstance(value, bytes) else value
    text = text.strip(" \t")
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            raise ValueError("unclosed IPv6 literal")
        host, port = text[1:end], text[end + 1 :]
        if port and not port.startswith(":"):
            raise ValueError("junk after an IPv6 literal")
        _check_port(port[1:])
        return _ipv6(host)
    host, _, port = text.partition(":")
    _check_port(port)
    return normalise_name(host)


def _check_port(port: str) -> None:
    if port and not (port.isascii() and port.isdigit()):
        raise ValueError(f"not a port: {port!r}")


def is_loopback(name: str) -> bool:
    """C{localhost}, C{*.localhost}, 127.0.0.0/8 and ::1 (names already normalised)."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def allowed_host_entry(text: str) -> str:
    """One C{--allowed-host} value, checked and normalised.

    C{*} allows every host; C{.example.org} allows example.org and its
    subdomains; anything else is one name or address (a port, if given, is
    ignored).
    """
    text = text.strip()
    if text == "*":
        return text
    if text.startswith("."):
        return "." + normalise_name(text[1:])
    try:
        return _ipv6(text)
    except ValueError:
        return host_name(text)


@frozen
class HostRules:
    """The configured part of the allow-list (loopback and the machine's own names come on top)."""

    names: frozenset[str] = frozenset()
    #: C{.example.org}: example.org and every name below it.
    suffixes: tuple[str, ...] = ()
    #: From C{--allowed-origin} hosts with a C{*}.
    patterns: tuple[re.Pattern[str], ...] = ()
    any_host: bool = False

    @classmethod
    def from_config(cls, allowed_hosts: Iterable[str], allowed_origins: Iterable[str]) -> HostRules:
        """From normalised C{--allowed-host} values and raw C{--allowed-origin} patterns."""
        names: set[str] = set()
        suffixes: list[str] = []
        patterns: list[re.Pattern[str]] = []
        any_host = False
        for entry in allowed_hosts:
            if entry == "*":
                any_host = True
            elif entry.startswith("."):
                suffixes.append(entry)
            else:
                names.add(entry)
        for origin in allowed_origins:
            host = pattern_host(origin)
            if host == "*":
                any_host = True
            elif "*" in host:
                patterns.append(re.compile(re.escape(host).replace(r"\*", "[^/]*")))
            else:
                try:
                    names.add(allowed_host_entry(host))
                except ValueError:
                    _log.warn("--allowed-origin {origin}: no usable host name", origin=origin)
        return cls(frozenset(names), tuple(suffixes), tuple(patterns), any_host)

    def matches(self, name: str) -> bool:
        """Whether the configuration allows C{name} (normalised)."""
        if self.any_host or name in self.names:
            return True
        if any(name == suffix[1:] or name.endswith(suffix) for suffix in self.suffixes):
            return True
        return any(pattern.fullmatch(name) for pattern in self.patterns)


def _normalised(names: Iterable[str]) -> frozenset[str]:
    result = set()
    for name in names:
        try:
            result.add(allowed_host_entry(name))
        except ValueError:
            continue
    return frozenset(result)


class HostPolicy:
    """Judges C{Host} values: the rules, loopback, and the machine's names (refreshed on a miss).

    @param local: the machine's names and addresses, read cheaply (called on
        the reactor thread, at most once per C{refresh_after} seconds).
    @param lookup: names that may need DNS (the FQDN), fired later; None to skip.
    """

    def __init__(
        self,
        rules: HostRules | None = None,
        *,
        clock: IReactorTime,
        local: Callable[[], Iterable[str]] = tuple,
        lookup: Callable[[], Deferred[Iterable[str]]] | None = None,
        refresh_after: float = 10.0,
        cache_size: int = 1024,
    ) -> None:
        self.rules = rules if rules is not None else HostRules()
        self._clock = clock
        self._local = local
        self._lookup = lookup
        self._refresh_after = refresh_after
        self._cache_size = cache_size
        self._cache: dict[bytes, HostVerdict] = {}
        self._local_names: frozenset[str] = frozenset()
        self._looked_up: frozenset[str] = frozenset()
        self._machine: frozenset[str] = frozenset()
        self._refreshed_at: float | None = None
        self._looking_up = False
        self._local_failing = False
        self._lookup_failing = False

    def start(self) -> None:
        """Read the machine's names now, so the first request does not pay for it."""
        self._refresh()

    def judge(self, host: bytes) -> HostVerdict:
        """Whether a request with this C{Host} value is served."""
        verdict = self._cache.get(host)
        if verdict is HostVerdict.ALLOWED or verdict is HostVerdict.INVALID:
            return verdict
        if verdict is HostVerdict.UNKNOWN and not self._refresh_due():
            return verdict
        verdict = self._judge(host)
        if verdict is HostVerdict.UNKNOWN and self._refresh_due():
            self._refresh()
            verdict = self._judge(host)
        if len(self._cache) >= self._cache_size:
            del self._cache[next(iter(self._cache))]
        self._cache[host] = verdict
        return verdict

    def _judge(self, host: bytes) -> HostVerdict:
        try:
            name = host_name(host)
        except ValueError:
            return HostVerdict.INVALID
        if name in self._machine or is_loopback(name) or self.rules.matches(name):
            return HostVerdict.ALLOWED
        return HostVerdict.UNKNOWN

    def _refresh_due(self) -> bool:
        return (
            self._refreshed_at is None
            or self._clock.seconds() - self._refreshed_at >= self._refresh_after
        )

    def _refresh(self) -> None:
        self._refreshed_at = self._clock.seconds()
        try:
            self._local_names = _normalised(self._local())
        except Exception:
            if not self._local_failing:
                self._local_failing = True
                _log.failure(
                    "Cannot list this machine's addresses; only configured Host names work"
                )
        else:
            if self._local_failing:
                self._local_failing = False
                _log.info("Listing this machine's addresses works again")
        self._update()
        if self._lookup is not None and not self._looking_up:
            self._looking_up = True
            self._lookup().addCallbacks(self._looked_up_names, self._lookup_failed)

    def _looked_up_names(self, names: Iterable[str]) -> None:
        self._looking_up = False
        self._lookup_failing = False
        self._looked_up = _normalised(names)
        self._update()

    def _lookup_failed(self, reason: Failure) -> None:
        self._looking_up = False
        if not self._lookup_failing:
            self._lookup_failing = True
            _log.failure("Cannot look up this machine's full name", failure=reason)

    def _update(self) -> None:
        machine = self._local_names | self._looked_up
        if machine != self._machine:
            self._machine = machine
            self._cache.clear()


def in_daemon_thread(reactor: IReactorFromThreads, f: Callable[[], T]) -> Deferred[T]:
    """C{f()} in a thread of its own that never holds up shutdown, like a DNS query
    that never returns would in the reactor's pool (whose threads stop is joined)."""
    result: Deferred[T] = Deferred()

    def run() -> None:
        try:
            value = f()
        except BaseException:
            reactor.callFromThread(result.errback, Failure())
        else:
            reactor.callFromThread(result.callback, value)

    threading.Thread(target=run, name="pistatsd-fqdn", daemon=True).start()
    return result


def host_policy(
    allowed_hosts: Iterable[str], allowed_origins: Iterable[str], reactor: IReactorTime
) -> HostPolicy:
    """The daemon's policy: configured rules plus this machine's names, the FQDN in a thread."""
    lookup: Callable[[], Deferred[Iterable[str]]] | None = None
    if IReactorFromThreads.providedBy(reactor):
        threaded = reactor

        def lookup() -> Deferred[Iterable[str]]:
            return in_daemon_thread(threaded, fqdn_names)

    return HostPolicy(
        HostRules.from_config(allowed_hosts, allowed_origins),
        clock=reactor,
        local=machine_names,
        lookup=lookup,
    )
