"""The C{net} part: traffic totals over the physical interfaces, rates, per-interface detail, Wi-Fi.

Sources are procfs and sysfs text, never a socket: C{psutil.net_if_addrs()}
needs C{AF_NETLINK}, which the hardened systemd unit forbids.

 - C{/proc/net/dev}: every interface's counters (bytes, packets, errors, drops);
 - C{/sys/class/net/<if>/}: C{device} (a link only real hardware has),
   C{operstate} and C{carrier} (link up), C{speed} (Mbit/s, C{-1} or an
   error when unknown), C{type} (772 is loopback);
 - C{/proc/net/wireless}: signal level and link quality of Wi-Fi interfaces.

Which interfaces the totals count: those with a C{device} link, i.e. real
NICs (Ethernet, Wi-Fi, USB adapters, a VM's virtio NIC).  That one rule
leaves out everything that would count the same bytes twice: C{lo}, bridges
(C{br0}, C{docker0}, C{virbr0}), C{veth*}, VLAN sub-interfaces (their traffic
is already on the parent NIC), C{tun}/C{tap}, WireGuard, C{ifb}, and bonds.
For a bond the I{members} are counted, not the bond: the members are the
hardware and the bond's counters are their sum.  A machine with no real NIC
at all (a container, whose C{eth0} is a C{veth}) counts every interface but
C{lo} instead, so its totals are not zero.

C{interfaces} lists every interface but C{lo} (virtual ones too, marked so),
real ones first, at most L{MAX_INTERFACES} of them: a container host can have
hundreds of C{veth}s and each is a label in C{/metrics}.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from pistatsd.machine.readings import Troubles, rate, read_int, read_text

MAX_INTERFACES = 64
"""Most interfaces listed in C{net.interfaces}; the totals still count every real one."""

LINK_QUALITY_MAX = 70.0
"""The best link quality in C{/proc/net/wireless}.

cfg80211 (every current Linux Wi-Fi driver) derives it from the signal,
clamped to -110..-40 dBm, as C{signal + 110}: so 0..70, and 70 is what
C{iwconfig} shows as C{70/70}.  C{link_quality} is this number over 70.
"""

_ARPHRD_LOOPBACK = 772
_UNKNOWN_SPEEDS = frozenset({65535, 2**32 - 1})  # SPEED_UNKNOWN as some drivers spell it


class Counters(NamedTuple):
    """One interface's line of C{/proc/net/dev}."""

    rx_bytes: int
    rx_packets: int
    rx_errors: int
    rx_drops: int
    tx_bytes: int
    tx_packets: int
    tx_errors: int
    tx_drops: int


class Wifi(NamedTuple):
    """One interface's line of C{/proc/net/wireless}, made meaningful."""

    signal_dbm: int | None
    link_quality: float | None


def parse_net_dev(text: str) -> dict[str, Counters]:
    """Counters per interface from the text of C{/proc/net/dev}; malformed lines are skipped.

    Each line is C{name: 8 receive fields 8 transmit fields}; bytes, packets,
    errs and drop come first in each group.
    """
    found: dict[str, Counters] = {}
    for line in text.splitlines():
        name, colon, rest = line.partition(":")
        fields = rest.split()
        if not colon or len(fields) < 16:
            continue  # the two header lines, or garbage
        try:
            v = [int(field) for field in fields[:16]]
        except ValueError:
            continue
        found[name.strip()] = Counters(v[0], v[1], v[2], v[3], v[8], v[9], v[10], v[11])
    return found


def parse_wireless(text: str) -> dict[str, Wifi]:
    """Signal and quality per interface from the text of C{/proc/net/wireless}.

    A line reads C{wlan0: 0000   52.  -58.  -256 ...}: status, link quality,
    signal level, noise (a trailing dot means "updated").  cfg80211 prints
    the level in dBm, so a real one is negative; C{-256} (no reading) or a
    non-negative value (a driver's own relative scale) is not a dBm and
    gives C{None}.
    """
    found: dict[str, Wifi] = {}
    for line in text.splitlines():
        name, colon, rest = line.partition(":")
        fields = rest.split()
        if not colon or len(fields) < 3:
            continue
        try:
            quality = float(fields[1].rstrip("."))
            level = float(fields[2].rstrip("."))
        except ValueError:
            continue
        signal = int(level) if -150 <= level < 0 else None
        link = round(min(1.0, max(0.0, quality / LINK_QUALITY_MAX)), 2)
        found[name.strip()] = Wifi(signal, link)
    return found


class _Kind(NamedTuple):
    """What an interface is, fixed for its lifetime so read once, and where its state is.

    The paths are kept as strings: building them with pathlib every sample
    costs more than reading the files.
    """

    virtual: bool
    loopback: bool
    operstate: str
    carrier: str
    speed: str


class NetCollector:
    """Builds the C{net} part; keeps the previous counters, so it can give rates.

    Never raises: a missing C{/proc/net/dev} makes C{net} null (logged once),
    a missing sysfs entry makes that field null, a counter that went
    backwards makes that rate null for one sample.
    """

    def __init__(
        self,
        sys_root: str | Path = "/sys",
        proc_root: str | Path = "/proc",
        max_interfaces: int = MAX_INTERFACES,
    ) -> None:
        """
        @param sys_root: where sysfs is mounted; tests point it at a fixture tree.
        @param proc_root: where procfs is mounted; likewise.
        @param max_interfaces: the most interfaces listed in C{interfaces}.
        """
        self._class_net = Path(sys_root) / "class" / "net"
        self._proc_net = Path(proc_root) / "net"
        self._net_dev = str(self._proc_net / "dev")
        self._net_wireless = str(self._proc_net / "wireless")
        self.max_interfaces = max_interfaces
        self._kinds: dict[str, _Kind] = {}
        self._previous: dict[str, Counters] = {}
        self._previous_when: float | None = None
        self._troubles = Troubles("net")

    def section(self, when: float) -> dict[str, Any]:
        """C{{"net": ...}} at clock time C{when}: the snapshot key this collector owns."""
        return {"net": self.net(when)}

    def net(self, when: float) -> dict[str, Any] | None:
        """The C{net} part at clock time C{when}, or C{None} without C{/proc/net/dev}."""
        try:
            return self._net(when)
        except Exception:
            self._troubles.failure("bug", "cannot build the net part; it is null")
            return None

    def _net(self, when: float) -> dict[str, Any] | None:
        text = read_text(self._net_dev)
        if text is None:
            self._troubles.warn("dev", "cannot read {path}; net is null", path=self._net_dev)
            return None
        self._troubles.clear("dev")
        counters = parse_net_dev(text)
        elapsed = None if self._previous_when is None else when - self._previous_when
        kinds = self._classify(counters)
        wifi = self._wireless()

        listed = [name for name in counters if not kinds[name].loopback]
        real = [name for name in listed if not kinds[name].virtual]
        counted = real or listed  # a container has no real NIC: count what it has

        interfaces: dict[str, dict[str, Any]] = {}
        rates: dict[str, tuple[float | None, float | None]] = {}
        for name in listed:
            now, before = counters[name], self._previous.get(name)
            rx = rate(before.rx_bytes if before else None, now.rx_bytes, elapsed)
            tx = rate(before.tx_bytes if before else None, now.tx_bytes, elapsed)
            rates[name] = (rx, tx)
        for name in sorted(listed, key=lambda n: (kinds[n].virtual, n))[: self.max_interfaces]:
            interfaces[name] = self._interface(counters[name], kinds[name], rates[name])
            if name in wifi:
                interfaces[name]["wifi"] = wifi[name]._asdict()
        if len(listed) > self.max_interfaces:
            self._troubles.note(
                "many",
                "{n} interfaces; listing {limit} (real ones first), totals count all",
                n=len(listed),
                limit=self.max_interfaces,
            )

        self._previous = counters
        self._previous_when = when
        return {
            "bytes_sent": sum(counters[n].tx_bytes for n in counted),
            "bytes_recv": sum(counters[n].rx_bytes for n in counted),
            "packets_sent": sum(counters[n].tx_packets for n in counted),
            "packets_recv": sum(counters[n].rx_packets for n in counted),
            "rx_bytes_per_s": _total([rates[n][0] for n in counted], elapsed),
            "tx_bytes_per_s": _total([rates[n][1] for n in counted], elapsed),
            "interfaces": interfaces,
        }

    def _interface(
        self,
        counters: Counters,
        kind: _Kind,
        rates: tuple[float | None, float | None],
    ) -> dict[str, Any]:
        """One entry of C{interfaces}: exactly the fields of SPEC section 11."""
        return {
            "up": _up(kind),
            "virtual": kind.virtual,
            "speed_mbps": _speed(kind),
            "rx_bytes": counters.rx_bytes,
            "tx_bytes": counters.tx_bytes,
            "rx_bytes_per_s": rates[0],
            "tx_bytes_per_s": rates[1],
            "rx_errors": counters.rx_errors,
            "tx_errors": counters.tx_errors,
            "rx_drops": counters.rx_drops,
            "tx_drops": counters.tx_drops,
        }

    def _classify(self, counters: Mapping[str, Counters]) -> dict[str, _Kind]:
        """Each interface's kind, read from sysfs the first time it is seen."""
        for gone in set(self._kinds) - set(counters):
            del self._kinds[gone]  # re-created later, it is looked at afresh
        for name in counters:
            if name not in self._kinds:
                here = self._class_net / name
                self._kinds[name] = _Kind(
                    virtual=not (here / "device").exists(),
                    loopback=name == "lo" or read_int(here / "type") == _ARPHRD_LOOPBACK,
                    operstate=str(here / "operstate"),
                    carrier=str(here / "carrier"),
                    speed=str(here / "speed"),
                )
        return self._kinds

    def _wireless(self) -> dict[str, Wifi]:
        """Wi-Fi readings; none (silently) where the kernel has no C{/proc/net/wireless}."""
        text = read_text(self._net_wireless)
        return {} if text is None else parse_wireless(text)


def _up(kind: _Kind) -> bool | None:
    """Whether the link is up: C{operstate}, or C{carrier} where a driver says "unknown"."""
    state = read_text(kind.operstate)
    if state is None:
        return None
    if state == "unknown":  # tun, some Wi-Fi and USB drivers never report a state
        return read_int(kind.carrier) == 1
    return state == "up"


def _speed(kind: _Kind) -> int | None:
    """Link speed in Mbit/s; C{None} when unknown (Wi-Fi, link down, virtual, C{-1})."""
    speed = read_int(kind.speed)
    if speed is None or speed <= 0 or speed in _UNKNOWN_SPEEDS:
        return None
    return speed


def _total(rates: Sequence[float | None], elapsed: float | None) -> float | None:
    """The sum of the rates, or C{None} if any is unknown (the total would be a guess).

    With no window yet (the first sample) it is C{None} even over no interface at all.
    """
    if elapsed is None or elapsed <= 0 or None in rates:
        return None
    return round(sum(value for value in rates if value is not None), 1)
