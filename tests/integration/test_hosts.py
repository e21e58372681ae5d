"""The Host allow-list: normalisation, rules, the machine's own names and their refresh."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from pistatsd.web.hosts import (
    HostPolicy,
    HostRules,
    HostVerdict,
    allowed_host_entry,
    host_name,
    in_daemon_thread,
)
from pistatsd.web.machine import (
    ipv4_from_fib_trie,
    ipv6_from_if_inet6,
    machine_names,
    names_for,
    own_addresses,
)
from pistatsd.ws.origins import pattern_host
from tests.daemon import PROJECT
from tests.real import require_program

ALLOWED, UNKNOWN, INVALID = HostVerdict.ALLOWED, HostVerdict.UNKNOWN, HostVerdict.INVALID


class HostNameTests(SynchronousTestCase):
    def test_ports_are_dropped(self) -> None:
        self.assertEqual(host_name(b"pi.local:8888"), "pi.local")
        self.assertEqual(host_name(b"pi.local:"), "pi.local")
        self.assertEqual(host_name(b"192.0.2.2:80"), "192.0.2.2")

    def test_ipv6_literals(self) -> None:
        self.assertEqual(host_name(b"[::1]:8888"), "::1")
        self.assertEqual(host_name(b"[0:0:0:0:0:0:0:1]"), "::1")
        self.assertEqual(host_name(b"[FE80::1%25eth0]:80"), "fe80::1")
        self.assertEqual(host_name(b"[::ffff:127.0.0.1]"), "127.0.0.1")

    def test_case_trailing_dot_and_idn(self) -> None:
        self.assertEqual(host_name(b"LocalHost."), "localhost")
        self.assertEqual(host_name("Bücher.Example".encode()), "xn--bcher-kva.example")
        self.assertEqual(host_name(b"xn--bcher-kva.example"), "xn--bcher-kva.example")

    def test_invalid_values(self) -> None:
        for value in (
            b"",
            b":80",
            b"a b",
            b"a@b",
            b"a/b",
            b"[::1",
            b"[::1]x",
            b"[nope]",
            b"::1",
            b"a:b",
            b"a..b",
            b"-a.example",
            b"\xff\xfe",
            b"a" * 64 + b".example",
            b"pi.local:\xd9\xa3",
        ):
            self.assertRaises(ValueError, host_name, value)

    def test_allowed_host_entries(self) -> None:
        self.assertEqual(allowed_host_entry("*"), "*")
        self.assertEqual(allowed_host_entry(".Example.ORG"), ".example.org")
        self.assertEqual(allowed_host_entry("::1"), "::1")
        self.assertEqual(allowed_host_entry("[::1]:8888"), "::1")
        self.assertEqual(allowed_host_entry("Pi.Local:8888"), "pi.local")
        for bad in ("a b", ".", "*.example.org", "http://x"):
            self.assertRaises(ValueError, allowed_host_entry, bad)

    def test_origin_pattern_hosts(self) -> None:
        self.assertEqual(pattern_host("https://Dash.Example:*"), "dash.example")
        self.assertEqual(pattern_host("http://other.example"), "other.example")
        self.assertEqual(pattern_host("https://*.example.org:443"), "*.example.org")
        self.assertEqual(pattern_host("http://[::1]:8888"), "::1")


class HostPolicyTests(SynchronousTestCase):
    def policy(self, hosts=(), origins=(), **kw) -> HostPolicy:
        kw.setdefault("clock", Clock())
        return HostPolicy(HostRules.from_config(hosts, origins), **kw)

    def test_loopback_is_always_served(self) -> None:
        policy = self.policy()
        for host in (
            b"localhost",
            b"LOCALHOST:8888",
            b"app.localhost",
            b"127.0.0.1:8888",
            b"127.8.9.1",
            b"[::1]:8888",
            b"[::ffff:127.0.0.1]",
        ):
            self.assertIs(policy.judge(host), ALLOWED, host)

    def test_others_are_unknown_or_invalid(self) -> None:
        policy = self.policy()
        for host in (b"rebind.example", b"0.0.0.0", b"192.0.2.2", b"[::]", b"localhost.example"):
            self.assertIs(policy.judge(host), UNKNOWN, host)
        self.assertIs(policy.judge(b"a b"), INVALID)

    def test_configured_names_and_suffixes(self) -> None:
        policy = self.policy([allowed_host_entry(h) for h in ("Pi.Example", ".home.arpa", "::2")])
        for host in (b"pi.example:1", b"PI.EXAMPLE.", b"home.arpa", b"x.y.home.arpa", b"[::2]"):
            self.assertIs(policy.judge(host), ALLOWED, host)
        for host in (b"pi.example.evil", b"xhome.arpa", b"home.arpa.evil"):
            self.assertIs(policy.judge(host), UNKNOWN, host)

    def test_star_allows_any_host(self) -> None:
        policy = self.policy(["*"])
        self.assertIs(policy.judge(b"anything.example"), ALLOWED)
        self.assertIs(policy.judge(b"a b"), INVALID)

    def test_allowed_origin_hosts(self) -> None:
        policy = self.policy(origins=["https://dash.example:*", "https://*.corp.example:443"])
        self.assertIs(policy.judge(b"dash.example:8888"), ALLOWED)
        self.assertIs(policy.judge(b"a.corp.example"), ALLOWED)
        self.assertIs(policy.judge(b"corp.example"), UNKNOWN)
        self.assertIs(self.policy(origins=["https://*:*"]).judge(b"x.example"), ALLOWED)

    def test_machine_names_and_addresses(self) -> None:
        policy = self.policy(local=lambda: {"192.0.2.2", "fe80::1%eth0", "Pi", "pi.local"})
        for host in (b"192.0.2.2:8888", b"[fe80::1]", b"pi", b"PI.local"):
            self.assertIs(policy.judge(host), ALLOWED, host)

    def test_new_address_is_found_on_a_miss_at_most_every_10_s(self) -> None:
        clock = Clock()
        addresses = {"192.0.2.2"}
        calls = []

        def local():
            calls.append(clock.seconds())
            return set(addresses)

        policy = self.policy(clock=clock, local=local)
        policy.start()
        self.assertIs(policy.judge(b"192.0.2.2"), ALLOWED)
        addresses.add("198.51.100.7")  # DHCP gave us another address
        clock.advance(1)
        self.assertIs(policy.judge(b"198.51.100.7"), UNKNOWN)  # refreshed 1 s ago: not yet
        for _ in range(100):
            self.assertIs(policy.judge(b"rebind.example"), UNKNOWN)
        self.assertEqual(len(calls), 1)
        clock.advance(10)
        self.assertIs(policy.judge(b"198.51.100.7"), ALLOWED)
        self.assertEqual(len(calls), 2)

    def test_cache_is_bounded(self) -> None:
        policy = self.policy(cache_size=50)
        for i in range(500):
            policy.judge(b"h%d.example" % i)
        self.assertLessEqual(len(policy._cache), 50)
        self.assertIs(policy.judge(b"localhost"), ALLOWED)

    def test_looked_up_names_arrive_later(self) -> None:
        pending: Deferred[set[str]] = Deferred()
        policy = self.policy(lookup=lambda: pending)
        policy.start()
        self.assertIs(policy.judge(b"pi.home.example"), UNKNOWN)
        pending.callback({"pi.home.example"})
        self.assertIs(policy.judge(b"pi.home.example"), ALLOWED)

    def test_failing_sources_are_logged_once_and_loopback_still_works(self) -> None:
        clock = Clock()

        def broken():
            raise OSError(97, "Address family not supported by protocol")

        policy = self.policy(clock=clock, local=broken)
        with capturedLogs() as events:
            for _ in range(3):
                clock.advance(11)
                self.assertIs(policy.judge(b"rebind.example"), UNKNOWN)
                self.assertIs(policy.judge(b"localhost"), ALLOWED)
        self.assertEqual(len(events), 1)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)


class DaemonThreadTests(SynchronousTestCase):
    """The FQDN lookup runs in a daemon thread: a DNS query that hangs cannot hold up exit."""

    def run_in_thread(self, f):
        calls = []

        @implementer(IReactorFromThreads)
        class Reactor:
            def callFromThread(self, f, *args):
                calls.append((f, args))

        gate = threading.Event()

        def gated():
            gate.wait(10)
            return f()

        d = in_daemon_thread(Reactor(), gated)
        [thread] = [t for t in threading.enumerate() if t.name == "pistatsd-fqdn"]
        self.assertTrue(thread.daemon)
        self.assertNoResult(d)
        gate.set()
        thread.join(10)
        [(callback, args)] = calls  # delivered on the reactor thread
        callback(*args)
        return d

    def test_result(self) -> None:
        self.assertEqual(self.successResultOf(self.run_in_thread(lambda: {"pi"})), {"pi"})

    def test_error(self) -> None:
        def broken():
            raise OSError("no DNS")

        self.failureResultOf(self.run_in_thread(broken), OSError)


FIB_TRIE = """\
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 192.0.2.0/24 2 0 2
           |-- 192.0.2.0
              /24 link UNICAST
           |-- 192.0.2.2
              /32 host LOCAL
           |-- 192.0.2.9
              /24 link UNICAST
              /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
           |-- 127.0.0.1
              /32 host LOCAL
"""

IF_INET6 = """\
fd000000000000000000000000000002 04 40 00 82     eth0
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
00000000000000000000000000000001 01 80 10 80       lo
"""


class MachineTests(SynchronousTestCase):
    def test_ipv4_from_fib_trie(self) -> None:
        self.assertEqual(ipv4_from_fib_trie(FIB_TRIE), {"127.0.0.1", "192.0.2.2", "192.0.2.9"})

    def test_ipv6_from_if_inet6(self) -> None:
        found = ipv6_from_if_inet6(IF_INET6)
        self.assertEqual(
            {host_name(f"[{a}]") for a in found}, {"fd00::2", "fe80::fc:ff:fe00:1", "::1"}
        )

    def test_psutil_only_without_procfs(self) -> None:
        missing = self.mktemp()
        self.assertEqual(own_addresses(missing, missing, lambda: {"192.0.2.5"}), {"192.0.2.5"})
        fib = self.mktemp()
        with open(fib, "w") as f:
            f.write(FIB_TRIE)
        self.assertEqual(
            own_addresses(fib, missing, lambda: {"192.0.2.5"}), ipv4_from_fib_trie(FIB_TRIE)
        )

    def test_names_for(self) -> None:
        self.assertEqual(names_for("pi"), {"pi", "pi.local"})
        self.assertEqual(names_for("pi.home.example"), {"pi.home.example", "pi", "pi.local"})

    def test_this_machine(self) -> None:
        self.assertIn("127.0.0.1", own_addresses())


@pytest.mark.real
def test_addresses_are_listed_without_any_socket(tmp_path):
    """Under the shipped unit (RestrictAddressFamilies= without AF_NETLINK) every
    socket() but INET, INET6 and UNIX fails with EAFNOSUPPORT.  strace makes every
    socket() call fail that way: the address list must not need one, while psutil's does."""
    strace = require_program("strace")
    script = textwrap.dedent(
        """
        import json, psutil
        from pistatsd.web.machine import machine_names
        try:
            psutil.net_if_addrs()
            psutil_ok = True
        except OSError:
            psutil_ok = False
        print(json.dumps({"names": sorted(machine_names()), "psutil": psutil_ok}))
        """
    )
    inject = ["-f", "-qq", "-o", os.devnull, "-e", "inject=socket:error=EAFNOSUPPORT"]
    result = subprocess.run(
        [strace, *inject, sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        timeout=60,
    )
    if "ptrace" in result.stderr and result.returncode != 0:
        pytest.skip("ptrace is not allowed here: " + result.stderr.strip()[-200:])
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["psutil"] is False
    assert "127.0.0.1" in found["names"]
    assert set(found["names"]) == machine_names()
