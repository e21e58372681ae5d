"""WebSockets in memory: our Site and Autobahn protocols against the independent
C{websockets} client protocol, over StringTransports, with a Clock."""

from __future__ import annotations

import json
import re

import txaio
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from pistatsd.web.connections import ConnectionCounter
from pistatsd.web.hosts import HostPolicy, HostRules
from pistatsd.web.routes import mount
from pistatsd.web.site import PistatsdSite
from pistatsd.ws.broadcast import HELLO_HISTORY_SECONDS, Broadcaster, slim
from pistatsd.ws.hub import WebSocketHub
from pistatsd.ws.origins import OriginPolicy, origin_key
from pistatsd.ws.wiring import websocket_routes
from tests.support import Client
from tests.wsclient import MemoryWebSocket

SNAPSHOT = {"timestamp": 1.0, "hostname": "pi", "cpu": {"percent": 5.0, "count": 2}}
SLIM = {"timestamp": 1.0, "cpu": {"percent": 5.0}}


class FakeSampler:
    """Two snapshots kept, taken a second apart just before the test's start."""

    history_seconds = 3600.0

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.latest = SNAPSHOT
        self.latest_json = json.dumps(SNAPSHOT, separators=(",", ":")).encode()
        now = clock.seconds()
        self.kept: list[tuple[float, dict]] = [(now - 1, SNAPSHOT), (now, SNAPSHOT)]
        self.asked: list[float] = []

    def history_after(self, taken: float) -> list[tuple[float, bytes]]:
        self.asked.append(taken)
        return [(when, json.dumps(s).encode()) for when, s in self.kept if when > taken]


class WebSocketTestCase(SynchronousTestCase):
    interval = 0.5
    allowed: tuple[str, ...] = ()
    #: Host names served besides loopback (as --allowed-host).
    hosts: tuple[str, ...] = ("pi.local",)
    max_connections = 100

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.patch(txaio.config, "loop", self.clock)
        self.sampler = FakeSampler(self.clock)
        self.broadcaster = Broadcaster(
            self.sampler, self.clock, self.interval, stuck_after=5, wall=self.clock.seconds
        )
        connections = ConnectionCounter(self.max_connections)
        self.hub = WebSocketHub(self.broadcaster, self.clock, connections=connections)
        self.hub.startService()
        origins = OriginPolicy.from_config(self.allowed)
        root = mount(Resource(), websocket_routes(self.hub, origins))
        hosts = HostPolicy(HostRules.from_config(self.hosts, self.allowed), clock=self.clock)
        self.site = PistatsdSite(
            root,
            reactor=self.clock,
            connections=connections,
            hosts=hosts,
            origins=origins,
        )

    def connect(self, path: str = "/ws/echo", **kw) -> MemoryWebSocket:
        return MemoryWebSocket(self.site, path, **kw)


class EchoTests(WebSocketTestCase):
    def test_text_and_binary_come_back_unchanged(self) -> None:
        client = self.connect()
        self.assertEqual(client.status, 101)
        client.send_text("héllo")
        client.send_binary(b"\x00\xff")
        self.assertEqual(client.pump(), ["héllo", b"\x00\xff"])

    def test_messages_do_not_format_autobahn_debug_lines(self) -> None:
        """Autobahn formats a debug line per received chunk and per frame sent,
        logged or not; ours skip it (the formatter raises here if called)."""
        import autobahn.twisted.websocket
        import autobahn.websocket.protocol

        def formatted(obj: object) -> str:
            raise AssertionError(f"debug line formatted for {obj!r}")

        client = self.connect()
        server = client.server
        sent = server.trafficStats.outgoingOctetsWireLevel
        self.patch(autobahn.twisted.websocket, "hltype", formatted)
        self.patch(autobahn.websocket.protocol, "hltype", formatted)
        client.send_text("héllo")
        self.assertEqual(client.pump(), ["héllo"])
        self.assertEqual(
            server.trafficStats.outgoingOctetsWireLevel, sent + 2 + len("héllo".encode())
        )

    def test_limit_is_64k(self) -> None:
        client = self.connect()
        client.send_text("x" * 65536)
        self.assertEqual(client.pump(), ["x" * 65536])
        client.send_text("x" * 65537)
        client.pump()
        self.assertEqual(client.close_code, 1009)

    def test_plain_get_is_told_to_upgrade(self) -> None:
        from tests.support import request

        response = request(self.site, "GET", "/ws/echo")
        self.assertEqual(response.status, 426)
        self.assertEqual(json.loads(response.body)["error"][:23], "this is a WebSocket end")


class AccountingTests(WebSocketTestCase):
    max_connections = 3

    def test_upgraded_connection_moves_from_http_to_hub(self) -> None:
        client = self.connect()
        self.assertEqual(self.site.open_connections, 0)
        self.assertEqual(self.hub.count, 1)
        self.assertEqual(self.site.requests_total, 1)
        client.server.dropConnection(abort=True)
        client.server.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.hub.count, 0)

    def test_cap_counts_websockets(self) -> None:
        clients = [self.connect() for _ in range(3)]
        self.assertEqual([c.status for c in clients], [101, 101, 101])
        refused = Client(self.site)
        self.assertIn(b"503 Service Unavailable", refused.transport.value())


class OriginTests(WebSocketTestCase):
    allowed = ("https://dash.example:*", "http://other.example")

    def test_no_origin_accepted(self) -> None:
        self.assertEqual(self.connect().status, 101)

    def test_same_origin_accepted(self) -> None:
        self.assertEqual(self.connect(origin="http://127.0.0.1:8888").status, 101)
        self.assertEqual(self.connect(origin="http://pi.local", host="pi.local").status, 101)

    def test_allowed_origins(self) -> None:
        self.assertEqual(self.connect(origin="https://dash.example:4443").status, 101)
        self.assertEqual(self.connect(origin="http://other.example").status, 101)

    def test_others_refused(self) -> None:
        for origin in (
            "http://evil.example",
            "http://127.0.0.1:9999",
            "https://127.0.0.1:8888",
            "null",
            "http://other.example:8080",
            "garbage",
        ):
            client = self.connect(origin=origin)
            self.assertEqual(client.status, 403, origin)
        self.assertEqual(self.hub.count, 0)

    def test_https_page_behind_a_local_tls_proxy(self) -> None:
        """nginx terminates TLS and says so: the https:// page is same-origin."""
        https = {"X-Forwarded-Proto": "https"}
        self.assertEqual(
            self.connect(origin="https://pi.local", host="pi.local", headers=https).status, 101
        )
        # Without the header, the page's scheme differs from the connection's.
        self.assertEqual(self.connect(origin="https://pi.local", host="pi.local").status, 403)
        # The header says what the browser used: an http:// page is then cross-origin.
        self.assertEqual(
            self.connect(origin="http://pi.local", host="pi.local", headers=https).status, 403
        )

    def test_forwarded_host_from_a_local_proxy(self) -> None:
        headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "pi.example"}
        client = self.connect(origin="https://pi.example", host="pi.local", headers=headers)
        self.assertEqual(client.status, 101)

    def test_forwarding_headers_from_elsewhere_are_not_believed(self) -> None:
        for headers in (
            {"X-Forwarded-Proto": "https"},
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "pi.example"},
        ):
            origin = "https://" + headers.get("X-Forwarded-Host", "pi.local")
            client = self.connect(origin=origin, host="pi.local", headers=headers, peer="192.0.2.9")
            self.assertEqual(client.status, 403, headers)
        self.assertEqual(
            self.connect(origin="http://pi.local", host="pi.local", peer="192.0.2.9").status, 101
        )

    def test_origin_key(self) -> None:
        self.assertEqual(origin_key("HTTP://Pi.Local"), "http://pi.local:80")
        self.assertEqual(origin_key("https://x:8443"), "https://x:8443")
        self.assertIsNone(origin_key("ftp://x"))
        self.assertIsNone(origin_key("http://x:notaport"))


class BroadcastTests(WebSocketTestCase):
    def test_hello_then_ticks(self) -> None:
        client = self.connect("/ws/broadcast")
        [hello] = client.messages
        hello = json.loads(hello)
        self.assertEqual(hello["type"], "hello")
        self.assertRegex(hello["id"], re.compile(r"^[0-9a-f]{32}$"))
        self.assertEqual(hello["interval"], 0.5)
        self.assertEqual(hello["sent"], 1000.0)
        self.assertEqual(hello["history"], [SLIM, SLIM])
        self.assertEqual(hello["latest"], SNAPSHOT)
        self.clock.advance(0.5)
        [tick] = client.pump()
        self.assertEqual(json.loads(tick), {"type": "stats", "sent": 1000.5, **SNAPSHOT})

    def test_hello_carries_the_latest_full_snapshot(self) -> None:
        """Every part a dashboard card shows (uptime, disk...) is there before the first tick."""
        full = {
            "timestamp": 2.0,
            "hostname": "pi",
            "cpu": {"percent": 7.0, "count": 2, "load": [0.1, 0.2, 0.3]},
            "uptime": {"seconds": 5.0, "boot_time": 995.0},
            "disk": {"path": "/", "total": 10, "used": 4, "free": 6, "percent": 40.0},
            "sensors": {"room": {"value": 21.5, "unit": "C", "error": None}},
        }
        self.sampler.latest = full
        self.sampler.latest_json = json.dumps(full, separators=(",", ":")).encode()
        client = self.connect("/ws/broadcast")
        hello = json.loads(client.messages[0])
        self.assertEqual(hello["latest"], full)
        self.assertNotIn("disk", hello["history"][-1])  # the history stays slim
        # A new sample changes what the next client is greeted with.
        newer = dict(full, timestamp=3.0, uptime={"seconds": 6.0, "boot_time": 995.0})
        self.sampler.latest = newer
        self.sampler.latest_json = json.dumps(newer).encode()
        self.assertEqual(json.loads(self.connect("/ws/broadcast").messages[0])["latest"], newer)
        self.assertEqual(client.pump(), [])  # nothing sent before the first tick

    def test_each_past_snapshot_is_slimmed_once_and_old_ones_leave(self) -> None:
        first = json.loads(self.connect("/ws/broadcast").messages[0])
        self.assertEqual(first["history"], [SLIM, SLIM])
        # A new sample: the next hello asks only for what came after the newest it has.
        later = dict(SNAPSHOT, timestamp=2.0)
        self.clock.advance(1)
        self.sampler.kept.append((self.clock.seconds(), later))
        self.sampler.latest = later
        self.sampler.latest_json = json.dumps(later).encode()
        second = json.loads(self.connect("/ws/broadcast").messages[0])
        self.assertEqual(second["history"], [SLIM, SLIM, slim(later)])
        # The first hello asked only for the window, the second for what is newer.
        self.assertEqual(len(self.sampler.asked), 2)
        self.assertGreaterEqual(self.sampler.asked[0], 1000.0 - HELLO_HISTORY_SECONDS - 1e-6)
        self.assertEqual(self.sampler.asked[1], 1000.0)
        # Five minutes on, only what is younger stays in the hello.
        self.clock.advance(HELLO_HISTORY_SECONDS - 0.5)
        newest = dict(SNAPSHOT, timestamp=3.0)
        self.sampler.latest = newest
        self.sampler.latest_json = json.dumps(newest).encode()
        third = json.loads(self.connect("/ws/broadcast").messages[0])
        self.assertEqual(third["history"], [slim(later)])

    def test_snapshots_older_than_the_window_are_not_asked_for(self) -> None:
        # An hour kept, nobody connected yet: only the last five minutes are decoded.
        self.sampler.kept.insert(0, (self.clock.seconds() - 3000, dict(SNAPSHOT, timestamp=0.5)))
        hello = json.loads(self.connect("/ws/broadcast").messages[0])
        self.assertEqual(hello["history"], [SLIM, SLIM])
        self.assertGreater(self.sampler.asked[0], self.clock.seconds() - 3000)

    def test_the_hello_reaches_no_further_back_than_the_sampler(self) -> None:
        self.sampler.history_seconds = 0.5
        hello = json.loads(self.connect("/ws/broadcast").messages[0])
        self.assertEqual(hello["history"], [SLIM], "the one taken a second ago is gone")

    def test_every_client_gets_the_same_bytes(self) -> None:
        a, b = self.connect("/ws/broadcast"), self.connect("/ws/broadcast")
        self.clock.pump([0.5] * 3)
        self.assertEqual(len(a.pump()), 3)
        self.assertEqual(a.messages[1:], b.pump())
        ids = {json.loads(a.messages[0])["id"], json.loads(b.messages[0])["id"]}
        self.assertEqual(len(ids), 2)

    def test_timer_runs_only_with_clients(self) -> None:
        self.assertFalse(self.broadcaster.running)
        client = self.connect("/ws/broadcast")
        self.assertTrue(self.broadcaster.running)
        client.server.dropConnection(abort=True)
        client.server.connectionLost(Failure(ConnectionDone()))
        self.assertFalse(self.broadcaster.running)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_client_messages_counted_and_ignored(self) -> None:
        client = self.connect("/ws/broadcast")
        client.send_text("hi")
        self.assertEqual(client.pump(), [])
        self.assertEqual(self.broadcaster.messages_ignored, 1)

    def test_paused_client_skips_ticks_and_is_dropped_when_stuck(self) -> None:
        slow, fast = self.connect("/ws/broadcast"), self.connect("/ws/broadcast")
        slow.server.pauseProducing()  # what the transport does when its buffer is full
        self.clock.pump([0.5] * 4)
        self.assertEqual(slow.pump(), [])
        self.assertEqual(len(fast.pump()), 4)
        self.assertEqual(self.broadcaster.skipped, 4)
        slow.server.resumeProducing()
        self.clock.advance(0.5)
        self.assertEqual(len(slow.pump()), 1)
        slow.server.pauseProducing()
        self.clock.pump([0.5] * 12)
        self.assertEqual(self.broadcaster.dropped, 1)
        self.assertTrue(slow.http.transport.disconnecting or slow.http.transport.disconnected)
        self.assertNotIn(slow.server, self.broadcaster.clients)
        self.assertEqual(len(fast.pump()), 13)

    def test_registered_as_producer_on_its_transport(self) -> None:
        client = self.connect("/ws/broadcast")
        self.assertIs(client.http.transport.producer, client.server)


class ShutdownTests(WebSocketTestCase):
    def test_clients_closed_with_1001(self) -> None:
        clients = [self.connect(), self.connect("/ws/broadcast")]
        d = self.hub.stopService()
        for client in clients:
            client.pump()
            self.assertEqual(client.close_code, 1001)
            client.server.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(d)

    def test_stragglers_aborted_after_timeout(self) -> None:
        client = self.connect()
        d = self.hub.stopService()
        self.assertNoResult(d)
        self.clock.advance(self.hub.close_timeout)
        self.successResultOf(d)
        self.assertTrue(client.http.transport.disconnecting)
        self.assertEqual(self.hub.count, 0)


class SlimHistoryTests(SynchronousTestCase):
    """The hello's history carries what the charts draw, rates included, and nothing else."""

    def test_network_and_disk_rates_are_kept(self) -> None:
        full = {
            "timestamp": 2.0,
            "cpu": {"percent": 7.0, "count": 2},
            "net": {"rx_bytes": 10, "rx_bytes_per_s": 100.0, "tx_bytes_per_s": None},
            "disk_io": {"mmcblk0": {"read_bytes_per_s": 1.0, "write_bytes_per_s": 2.0, "x": 3}},
            "filesystems": [{"mount": "/"}],
        }
        self.assertEqual(
            slim(full),
            {
                "timestamp": 2.0,
                "cpu": {"percent": 7.0},
                "net": {"rx_bytes_per_s": 100.0, "tx_bytes_per_s": None},
                "disk_io": {"mmcblk0": {"read_bytes_per_s": 1.0, "write_bytes_per_s": 2.0}},
            },
        )
