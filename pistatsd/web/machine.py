"""The names and addresses this machine answers to, for the C{Host} allow-list.

Addresses come from procfs, not from C{psutil.net_if_addrs()}: psutil asks
glibc's C{getifaddrs()}, which talks to the kernel over an C{AF_NETLINK}
socket, and the shipped systemd unit allows only C{AF_INET}, C{AF_INET6} and
C{AF_UNIX} (C{RestrictAddressFamilies=}); there psutil fails with
C{EAFNOSUPPORT}.  The kernel lists the same addresses as text:
C{/proc/net/fib_trie} has every local IPv4 address (its C{/32 host LOCAL}
entries) and C{/proc/net/if_inet6} every IPv6 one.  Reading them needs no
socket and takes microseconds, so it can run on the reactor thread.  psutil
is only the fallback where procfs has neither file (not Linux).

The host name comes from C{uname} (no DNS); the fully qualified name may
need DNS, so L{fqdn_names} is meant to run in a thread.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

FIB_TRIE = "/proc/net/fib_trie"
IF_INET6 = "/proc/net/if_inet6"


def ipv4_from_fib_trie(text: str) -> set[str]:
    """The local IPv4 addresses in the text of C{/proc/net/fib_trie}.

    Each address line (C{|-- 192.0.2.2}) is followed by one line per prefix
    it heads; the machine's own addresses are those with a C{/32 host LOCAL}
    line.
    """
    found: set[str] = set()
    current: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|--"):
            current = stripped[3:].strip()
        elif current is not None and stripped.startswith("/32 host LOCAL"):
            found.add(current)
    return found


def ipv6_from_if_inet6(text: str) -> set[str]:
    """The IPv6 addresses in the text of C{/proc/net/if_inet6} (32 hex digits begin each line)."""
    found: set[str] = set()
    for line in text.splitlines():
        digits = line.split(" ", 1)[0].strip()
        if len(digits) == 32:
            found.add(":".join(digits[i : i + 4] for i in range(0, 32, 4)))
    return found


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def psutil_addresses() -> set[str]:
    """Every interface address psutil knows (needs C{AF_NETLINK} on Linux)."""
    import psutil

    return {
        address.address
        for addresses in psutil.net_if_addrs().values()
        for address in addresses
        if address.family in (socket.AF_INET, socket.AF_INET6)
    }


def own_addresses(
    fib_trie: str = FIB_TRIE,
    if_inet6: str = IF_INET6,
    fallback: Callable[[], set[str]] = psutil_addresses,
) -> set[str]:
    """This machine's IPv4 and IPv6 addresses, from procfs or else psutil.

    Raises C{OSError} only when neither source works.
    """
    v4, v6 = _read(fib_trie), _read(if_inet6)
    if v4 is None and v6 is None:
        return fallback()
    return ipv4_from_fib_trie(v4 or "") | ipv6_from_if_inet6(v6 or "")


def names_for(hostname: str) -> set[str]:
    """The names of a host called C{hostname}: that, its first label and C{<label>.local}."""
    label = hostname.split(".", 1)[0]
    return {name for name in (hostname, label, f"{label}.local") if name and name != ".local"}


def machine_names() -> set[str]:
    """Addresses and names, read cheaply (no DNS): safe to call on the reactor thread."""
    return own_addresses() | names_for(socket.gethostname())


def fqdn_names() -> set[str]:
    """The fully qualified name and its short forms; may wait for DNS, so run it in a thread."""
    return names_for(socket.getfqdn())
