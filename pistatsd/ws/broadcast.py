"""The broadcast: one snapshot, encoded once per slice of clients, sent to each as one frame.

A tick's fan-out is cut into slices of L{SLICE} clients, one reactor turn
each: the reactor writes the first slice's frames to their sockets before
the next slice is queued, so the last of a thousand clients does not wait
for the whole loop, and the reactor's other work (requests, the sampler)
gets its turns in between.  Each slice is stamped with its own C{sent}.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from autobahn.websocket.protocol import PreparedMessage
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from pistatsd.jsontypes import JSONMapping, JSONObject
from pistatsd.loops import Repeating
from pistatsd.sampler import Sampler

if TYPE_CHECKING:
    from pistatsd.ws.protocols import BroadcastProtocol, HubProtocol

_log = Logger()

#: How much history the hello message carries (a fresh dashboard's backfill).
HELLO_HISTORY_SECONDS = 300.0

#: Clients sent to in one reactor turn (see the module's docstring).
SLICE = 100


def slim(snapshot: JSONMapping) -> JSONObject:
    """What a chart needs from a past snapshot: a tenth of its size.

    The hello carries minutes of history to every new client; full snapshots
    would make it hundreds of kilobytes per connection.
    """
    out: JSONObject = {"timestamp": snapshot.get("timestamp")}
    for part, key in (("cpu", "percent"), ("memory", "percent"), ("temperature", "celsius")):
        section = snapshot.get(part)
        if isinstance(section, Mapping):
            out[part] = {key: section.get(key)}
    cpu = snapshot.get("cpu")
    if isinstance(cpu, Mapping) and cpu.get("load"):
        out["cpu"]["load"] = cpu["load"]
    net = snapshot.get("net")
    if isinstance(net, Mapping):
        out["net"] = {key: net.get(key) for key in ("rx_bytes_per_s", "tx_bytes_per_s")}
    disks = snapshot.get("disk_io")
    if isinstance(disks, Mapping):
        out["disk_io"] = {
            name: {key: disk.get(key) for key in ("read_bytes_per_s", "write_bytes_per_s")}
            for name, disk in disks.items()
            if isinstance(disk, Mapping)
        }
    return out


class Broadcaster:
    """Sends C{{"type": "stats", "sent": ..., ...snapshot}} to every client each interval.

    The timer runs only while someone listens.  A client whose transport
    has paused us (its socket is not draining) skips ticks instead of
    queueing them; one paused for longer than C{stuck_after} is dropped.
    Ticks and the stuck time are on C{clock}; C{sent} is a date, from C{wall}.
    """

    def __init__(
        self,
        sampler: Sampler,
        clock: IReactorTime,
        interval: float,
        stuck_after: float = 30.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._sampler = sampler
        self._clock = clock
        self._wall = wall
        self.interval = interval
        self.stuck_after = stuck_after
        #: In the order they joined (a dict: a set's order would put the same
        #: clients last in every tick, for no reason of theirs).
        self.clients: dict[HubProtocol, None] = {}
        self._loop = Repeating(clock, self.tick, "broadcast tick")
        self._hello_cache: tuple[object, bytes] | None = None
        #: The hello's history: (clock time, slim snapshot as JSON), oldest first.
        self._slim: deque[tuple[float, bytes]] = deque()
        self._next_slice: IDelayedCall | None = None
        self.ticks = 0
        self.skipped = 0
        self.dropped = 0
        self.messages_ignored = 0

    @property
    def running(self) -> bool:
        """Whether the timer is running (only while clients are connected)."""
        return self._loop.running

    def join(self, client: BroadcastProtocol) -> None:
        """Greet a new client (recent history, latest snapshot); start the timer if needed."""
        self.clients[client] = None
        client.sendMessage(self.hello(client.ws_id))
        if not self.running:
            self._loop.start(self.interval, now=False)

    def leave(self, client: HubProtocol) -> None:
        """Forget a client; stop the timer when nobody is left."""
        self.clients.pop(client, None)
        if not self.clients and self.running:
            self._loop.stop()
            self._cancel_slices()

    def hello(self, client_id: str) -> bytes:
        """The hello message: slim history for the charts, and the latest full snapshot.

        C{latest} lets a fresh dashboard fill every card (uptime, disk,
        sensors...) at once instead of waiting up to an interval for the
        first tick; the slim history does not carry those parts.  Both are
        encoded once per sample, not per client (C{latest} is the sampler's
        own pre-encoded JSON), and each past snapshot is slimmed once
        (L{_slim_history}).
        """
        latest = self._sampler.latest
        if self._hello_cache is None or self._hello_cache[0] is not latest:
            encoded = b'"history":%s,"latest":%s' % (
                self._slim_history(),
                self._sampler.latest_json,
            )
            self._hello_cache = (latest, encoded)
        return b'{"type":"hello","id":"%s","sent":%s,"interval":%s,%s}' % (
            client_id.encode("ascii"),
            repr(self._wall()).encode("ascii"),
            repr(self.interval).encode("ascii"),
            self._hello_cache[1],
        )

    def _slim_history(self) -> bytes:
        """The last L{HELLO_HISTORY_SECONDS} of slim snapshots, as a JSON array.

        Each snapshot is decompressed, slimmed and encoded once, when the
        first hello after it is made, and kept as bytes: rebuilding five
        minutes of them for every new sample a client connects in took
        about 14 ms of the reactor on a 2-core x86 guest.
        """
        kept = self._slim
        reach = min(HELLO_HISTORY_SECONDS, self._sampler.history_seconds)
        since = self._clock.seconds() - reach
        # Only what is new and inside the window: after an hour with nobody
        # connected, the ring's older snapshots are not decoded for nothing.
        newest = kept[-1][0] if kept else float("-inf")
        after = max(newest, math.nextafter(since, -math.inf))  # since itself is inside
        for taken, encoded in self._sampler.history_after(after):
            slimmed = slim(json.loads(encoded))
            kept.append((taken, json.dumps(slimmed, separators=(",", ":")).encode()))
        while kept and kept[0][0] < since:
            kept.popleft()
        return b"[" + b",".join(encoded for _, encoded in kept) + b"]"

    def message(self, sent: float) -> bytes:
        """This tick's message: the sampler's pre-encoded snapshot with two keys in front."""
        snapshot = self._sampler.latest_json
        return b'{"type":"stats","sent":%s,%s' % (repr(sent).encode("ascii"), snapshot[1:])

    def tick(self) -> None:
        """Start this tick's fan-out (the loop logs any failure).

        Slices of the previous tick that are still waiting (a reactor
        running late) are not sent: those clients get this newer message.
        """
        self.ticks += 1
        self._cancel_slices()
        self._send_slice(list(self.clients), 0)

    def _cancel_slices(self) -> None:
        if self._next_slice is not None and self._next_slice.active():
            self._next_slice.cancel()
        self._next_slice = None

    def _send_slice(self, clients: list[HubProtocol], start: int) -> None:
        """Send to C{clients[start:start + SLICE]}, and queue the next slice for the next turn."""
        self._next_slice = None
        now = self._clock.seconds()
        prepared = PreparedMessage(self.message(self._wall()), False, False, True)
        for client in clients[start : start + SLICE]:
            if client not in self.clients:
                continue  # left since the tick began
            if client.paused_since is None:
                client.send_prepared(prepared)
                continue
            self.skipped += 1
            if now - client.paused_since >= self.stuck_after:
                self.dropped += 1
                _log.warn(
                    "Dropping WebSocket client {peer}: not reading for {seconds:.0f}s",
                    peer=client.peer,
                    seconds=now - client.paused_since,
                )
                self.leave(client)
                client.dropConnection(abort=True)
        if start + SLICE < len(clients):
            self._next_slice = self._clock.callLater(0, self._send_slice, clients, start + SLICE)
