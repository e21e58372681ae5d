"""Tests for L{pistatsd.machine.net}: totals, rates, interfaces and Wi-Fi from fixture trees."""

from __future__ import annotations

import os

from twisted.logger import LogLevel
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.machine import net as net_module
from pistatsd.machine.net import Counters, NetCollector, Wifi, parse_net_dev, parse_wireless
from tests.machine_trees import (
    WIRELESS_HEADER,
    interface,
    net_dev,
    raspberry_pi,
    tree,
    write,
)
from tests.unit.test_sysinfo import capture_logs

INTERFACE_FIELDS = {
    "up",
    "virtual",
    "speed_mbps",
    "rx_bytes",
    "tx_bytes",
    "rx_bytes_per_s",
    "tx_bytes_per_s",
    "rx_errors",
    "tx_errors",
    "rx_drops",
    "tx_drops",
}


class ParseTests(SynchronousTestCase):
    """The two procfs files, parsed."""

    def test_netDev(self) -> None:
        """Bytes, packets, errs, drop of each direction; headers and garbage skipped."""
        text = (
            "Inter-|   Receive |  Transmit\n"
            " face |bytes    packets errs drop fifo frame compressed multicast|bytes\n"
            "  eth0: 1193698044   38287    1    2    0     0          0         0  "
            "3323939   25134    3    4    0     0       0          0\n"
            "  bad0: 1 2 3\n"
            "  bad1: a b c d e f g h i j k l m n o p\n"
        )
        self.assertEqual(
            parse_net_dev(text),
            {"eth0": Counters(1193698044, 38287, 1, 2, 3323939, 25134, 3, 4)},
        )

    def test_wireless(self) -> None:
        """Signal in dBm and quality over 70, as cfg80211 prints them."""
        text = WIRELESS_HEADER + " wlan0: 0000   52.  -58.  -256        0      0      0      0\n"
        self.assertEqual(parse_wireless(text), {"wlan0": Wifi(-58, 0.74)})

    def test_wirelessNoReading(self) -> None:
        """C{-256} (no level) or a non-negative relative level is not a dBm: C{None}."""
        text = WIRELESS_HEADER + " wlan0: 0000    0.  -256.  -256\n wlan1: 0000  80   200   0\n"
        self.assertEqual(parse_wireless(text), {"wlan0": Wifi(None, 0.0), "wlan1": Wifi(None, 1.0)})


class NetTestCase(SynchronousTestCase):
    def make(self, interfaces: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]) -> NetCollector:
        """A collector on fresh trees whose C{/proc/net/dev} holds C{interfaces}."""
        self.sys_root, self.proc_root = tree(self), tree(self)
        self.counters(interfaces)
        return NetCollector(self.sys_root, self.proc_root)

    def counters(self, interfaces: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]) -> None:
        """Rewrite C{/proc/net/dev}."""
        write(self.proc_root, "net/dev", net_dev(interfaces))


class TotalsTests(NetTestCase):
    """Which interfaces the totals count."""

    def test_raspberryPi(self) -> None:
        """Ethernet and Wi-Fi are counted; C{lo} is not (nor listed)."""
        sys_root, proc_root = raspberry_pi(self)
        net = NetCollector(sys_root, proc_root).net(1.0)
        assert net is not None
        self.assertEqual(net["bytes_recv"], 1300)
        self.assertEqual(net["bytes_sent"], 2400)
        self.assertEqual(net["packets_recv"], 13)
        self.assertEqual(net["packets_sent"], 24)
        self.assertEqual(sorted(net["interfaces"]), ["eth0", "wlan0"])

    def test_virtualInterfacesNotCounted(self) -> None:
        """Bridges, veths, VLANs, tunnels and bonds carry the NIC's bytes again: not counted."""
        c = self.make(
            {
                "eth0": ((100, 1), (10, 1)),
                "docker0": ((50, 1), (50, 1)),
                "veth12ab": ((50, 1), (50, 1)),
                "eth0.10": ((30, 1), (30, 1)),
                "wg0": ((20, 1), (20, 1)),
                "br0": ((40, 1), (40, 1)),
            }
        )
        interface(self.sys_root, "eth0")
        interface(self.sys_root, "docker0", physical=False, extra=("bridge",))
        interface(self.sys_root, "br0", physical=False, extra=("bridge",))
        interface(self.sys_root, "veth12ab", physical=False)
        interface(self.sys_root, "eth0.10", physical=False)
        interface(self.sys_root, "wg0", physical=False, kind=65534)
        net = c.net(1.0)
        assert net is not None
        self.assertEqual((net["bytes_recv"], net["bytes_sent"]), (100, 10))
        self.assertEqual((net["packets_recv"], net["packets_sent"]), (1, 1))
        listed = net["interfaces"]
        self.assertEqual(next(iter(listed)), "eth0")  # real ones first
        self.assertEqual(
            {name for name, e in listed.items() if e["virtual"]}, set(listed) - {"eth0"}
        )

    def test_bondCountedThroughItsMembers(self) -> None:
        """A bond's counters are its members' sum: the members (the NICs) count, not the bond."""
        c = self.make(
            {
                "eth0": ((100, 1), (10, 1)),
                "eth1": ((200, 2), (20, 2)),
                "bond0": ((300, 3), (30, 3)),
            }
        )
        interface(self.sys_root, "eth0", extra=("master",))
        interface(self.sys_root, "eth1", extra=("master",))
        interface(self.sys_root, "bond0", physical=False, extra=("bonding",))
        net = c.net(1.0)
        assert net is not None
        self.assertEqual((net["bytes_recv"], net["bytes_sent"]), (300, 30))
        self.assertTrue(net["interfaces"]["bond0"]["virtual"])

    def test_containerCountsWhatItHas(self) -> None:
        """No real NIC at all (a container's eth0 is a veth): every interface but lo counts."""
        c = self.make({"lo": ((9, 9), (9, 9)), "eth0": ((70, 7), (80, 8))})
        interface(self.sys_root, "lo", physical=False, kind=772)
        interface(self.sys_root, "eth0", physical=False)
        net = c.net(1.0)
        assert net is not None
        self.assertEqual((net["bytes_recv"], net["bytes_sent"]), (70, 80))
        self.assertEqual(list(net["interfaces"]), ["eth0"])

    def test_loopbackByType(self) -> None:
        """A loopback is known by its type (772), whatever its name."""
        c = self.make({"eth0": ((1, 1), (1, 1)), "lo2": ((5, 5), (5, 5))})
        interface(self.sys_root, "eth0")
        interface(self.sys_root, "lo2", physical=False, kind=772)
        net = c.net(1.0)
        assert net is not None
        self.assertEqual(list(net["interfaces"]), ["eth0"])


class InterfaceTests(NetTestCase):
    """The fields of each entry of C{interfaces}."""

    def test_exactFields(self) -> None:
        """Exactly the fields of SPEC section 11, Wi-Fi adding C{wifi}."""
        sys_root, proc_root = raspberry_pi(self)
        c = NetCollector(sys_root, proc_root)
        c.net(1.0)
        net = c.net(2.0)
        assert net is not None
        eth0, wlan0 = net["interfaces"]["eth0"], net["interfaces"]["wlan0"]
        self.assertEqual(set(eth0), INTERFACE_FIELDS)
        self.assertEqual(set(wlan0), INTERFACE_FIELDS | {"wifi"})
        self.assertEqual(wlan0["wifi"], {"signal_dbm": -58, "link_quality": 0.74})
        self.assertEqual(
            eth0,
            {
                "up": True,
                "virtual": False,
                "speed_mbps": 1000,
                "rx_bytes": 1000,
                "tx_bytes": 2000,
                "rx_bytes_per_s": 0.0,
                "tx_bytes_per_s": 0.0,
                "rx_errors": 1,
                "tx_errors": 3,
                "rx_drops": 2,
                "tx_drops": 4,
            },
        )

    def test_speedUnknown(self) -> None:
        """C{-1}, the u32 spelling of it, or no readable C{speed} (Wi-Fi): C{None}."""
        c = self.make({f"eth{i}": ((0,), (0,)) for i in range(4)})
        interface(self.sys_root, "eth0", speed="-1")
        interface(self.sys_root, "eth1", speed="4294967295")
        interface(self.sys_root, "eth2", speed=None)
        interface(self.sys_root, "eth3", speed="100")
        net = c.net(1.0)
        assert net is not None
        speeds = {name: e["speed_mbps"] for name, e in net["interfaces"].items()}
        self.assertEqual(speeds, {"eth0": None, "eth1": None, "eth2": None, "eth3": 100})

    def test_up(self) -> None:
        """operstate says; "unknown" (tun, some drivers) defers to carrier; no sysfs: C{None}."""
        c = self.make({name: ((0,), (0,)) for name in ("a", "b", "c", "d", "e")})
        interface(self.sys_root, "a", operstate="up")
        interface(self.sys_root, "b", operstate="down", carrier=None)
        interface(self.sys_root, "c", operstate="unknown", carrier="1")
        interface(self.sys_root, "d", operstate="unknown", carrier=None)
        net = c.net(1.0)
        assert net is not None
        ups = {name: e["up"] for name, e in net["interfaces"].items()}
        self.assertEqual(ups, {"a": True, "b": False, "c": True, "d": False, "e": None})

    def test_noWirelessFile(self) -> None:
        """A kernel without C{/proc/net/wireless}: no C{wifi} keys, nothing logged."""
        events = capture_logs(self, "pistatsd.machine.readings")
        sys_root, proc_root = raspberry_pi(self)
        os.remove(os.path.join(proc_root, "net/wireless"))
        net = NetCollector(sys_root, proc_root).net(1.0)
        assert net is not None
        self.assertNotIn("wifi", net["interfaces"]["wlan0"])
        self.assertEqual(events, [])

    def test_atMostMaxInterfaces(self) -> None:
        """A host with many veths lists real ones first up to the limit, logged once; totals
        still count every real one."""
        events = capture_logs(self, "pistatsd.machine.readings")
        c = self.make(
            {
                "veth0": ((1,), (1,)),
                "veth1": ((1,), (1,)),
                "eth1": ((5,), (5,)),
                "eth0": ((5,), (5,)),
            }
        )
        for name in ("veth0", "veth1"):
            interface(self.sys_root, name, physical=False)
        interface(self.sys_root, "eth0")
        interface(self.sys_root, "eth1")
        c.max_interfaces = 3
        for when in (1.0, 2.0, 3.0):
            net = c.net(when)
            assert net is not None
            self.assertEqual(list(net["interfaces"]), ["eth0", "eth1", "veth0"])
        self.assertEqual(net["bytes_recv"], 10)
        self.assertEqual(len(events), 1)
        self.assertIn("4 interfaces", events[0]["log_format"].format(**events[0]))


class RateTests(NetTestCase):
    """Rates: null first, per second over the window, never negative."""

    def setUp(self) -> None:
        self.c = self.make({"eth0": ((1000,), (500,)), "wlan0": ((0,), (0,))})
        interface(self.sys_root, "eth0")
        interface(self.sys_root, "wlan0")

    def rates(self, when: float) -> tuple[object, object, object, object]:
        net = self.c.net(when)
        assert net is not None
        eth0 = net["interfaces"]["eth0"]
        return (
            net["rx_bytes_per_s"],
            net["tx_bytes_per_s"],
            eth0["rx_bytes_per_s"],
            eth0["tx_bytes_per_s"],
        )

    def test_firstSampleNull(self) -> None:
        """No previous counters: every rate is null, not 0."""
        self.assertEqual(self.rates(10.0), (None, None, None, None))

    def test_perSecondOverTheWindow(self) -> None:
        """Bytes over the clock time between the samples; totals are the sum."""
        self.rates(10.0)
        self.counters({"eth0": ((3000,), (1500,)), "wlan0": ((100,), (50,))})
        self.assertEqual(self.rates(12.0), (1050.0, 525.0, 1000.0, 500.0))

    def test_counterBackwards(self) -> None:
        """A wrap or reset gives null for that sample, then rates from the new baseline."""
        self.rates(10.0)
        self.counters({"eth0": ((10,), (3000,)), "wlan0": ((0,), (0,))})
        rx_total, tx_total, rx, tx = self.rates(11.0)
        self.assertIsNone(rx)
        self.assertEqual(tx, 2500.0)  # each direction on its own
        self.assertIsNone(rx_total)
        self.assertEqual(tx_total, 2500.0)
        self.counters({"eth0": ((110,), (3000,)), "wlan0": ((0,), (0,))})
        self.assertEqual(self.rates(12.0), (100.0, 0.0, 100.0, 0.0))

    def test_newInterface(self) -> None:
        """A NIC plugged in has no rate yet, so the totals' rates are unknown for one sample."""
        self.rates(10.0)
        interface(self.sys_root, "eth1")
        self.counters({"eth0": ((2000,), (500,)), "wlan0": ((0,), (0,)), "eth1": ((7,), (7,))})
        net = self.c.net(11.0)
        assert net is not None
        self.assertIsNone(net["interfaces"]["eth1"]["rx_bytes_per_s"])
        self.assertEqual(net["interfaces"]["eth0"]["rx_bytes_per_s"], 1000.0)
        self.assertIsNone(net["rx_bytes_per_s"])

    def test_interfaceGone(self) -> None:
        """A NIC unplugged: the rest keep their rates; its return starts afresh."""
        self.rates(10.0)
        self.counters({"eth0": ((2000,), (500,))})
        self.assertEqual(self.rates(11.0), (1000.0, 0.0, 1000.0, 0.0))
        self.counters({"eth0": ((2000,), (500,)), "wlan0": ((5,), (5,))})
        net = self.c.net(12.0)
        assert net is not None
        self.assertIsNone(net["interfaces"]["wlan0"]["rx_bytes_per_s"])

    def test_clockDidNotMove(self) -> None:
        """Two samples at the same clock time have no window: null, not a division by zero."""
        self.rates(10.0)
        self.assertEqual(self.rates(10.0), (None, None, None, None))


class FaultTests(NetTestCase):
    """Missing and broken sources: null, logged once per episode, never an exception."""

    def test_noNetDev(self) -> None:
        """No C{/proc/net/dev}: C{net} is null, one warning; back, one info line."""
        events = capture_logs(self, "pistatsd.machine.readings")
        c = self.make({"eth0": ((1,), (1,))})
        os.remove(os.path.join(self.proc_root, "net/dev"))
        self.assertIsNone(c.net(1.0))
        self.assertIsNone(c.net(2.0))
        self.assertEqual([e["log_level"] for e in events], [LogLevel.warn])
        self.counters({"eth0": ((1,), (1,))})
        self.assertIsNotNone(c.net(3.0))
        self.assertEqual([e["log_level"] for e in events], [LogLevel.warn, LogLevel.info])

    def test_noSysfs(self) -> None:
        """No C{/sys/class/net} (odd containers): counters still, fields unknown."""
        c = self.make({"eth0": ((1,), (2,))})
        net = c.net(1.0)
        assert net is not None
        self.assertEqual((net["bytes_recv"], net["bytes_sent"]), (1, 2))
        self.assertIsNone(net["interfaces"]["eth0"]["up"])
        self.assertIsNone(net["interfaces"]["eth0"]["speed_mbps"])

    def test_unexpectedErrorNeverEscapes(self) -> None:
        """A bug inside gives a null C{net} and one traceback per episode, not an exception."""
        c = self.make({"eth0": ((1,), (1,))})
        self.patch(net_module, "parse_net_dev", lambda text: 1 / 0)
        self.assertEqual(c.section(1.0), {"net": None})
        self.assertEqual(c.section(2.0), {"net": None})
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_sectionOwnsNet(self) -> None:
        """C{section} gives the one key this collector owns."""
        sys_root, proc_root = raspberry_pi(self)
        self.assertEqual(list(NetCollector(sys_root, proc_root).section(1.0)), ["net"])
