"""Publishing the state and the discovery configs: newest only, one batch in flight.

Every C{interval} the publisher makes the state message and the set of
discovery configs from the latest snapshot and the alerts.  While the broker
is unreachable, or still acknowledging the previous batch, only the newest
state is kept (each new one replaces the last: no stale backlog, a bounded
memory whatever the outage).  When it can send, it sends one batch: the
configs that are new or changed, an empty retained config for each entity
that went away (so Home Assistant removes it), then the state, all
retained, QoS 1; the next batch waits for the broker to acknowledge this one.

Entities can also go away while the daemon is stopped (a USB disk not
plugged in at the next boot): at each connection the publisher subscribes to
this machine's discovery topics, and every retained config the broker holds
there that it no longer wants is removed with the next batch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from twisted.application.internet import TimerService
from twisted.internet.defer import DeferredList
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from pistatsd.alerts.events import CurrentAlerts
from pistatsd.episodes import Episode
from pistatsd.jsontypes import JSONMapping, JSONObject
from pistatsd.loops import guarded
from pistatsd.mqtt.discovery import Device, Topics, discovery_configs, encode
from pistatsd.mqtt.link import Session
from pistatsd.mqtt.state import state_document

_log = Logger()

#: Removal of an entity: an empty retained config.
REMOVED = b""


class StatePublisher(TimerService):
    """Makes and sends the state and discovery messages of this machine.

    @param snapshot: the sampler's latest snapshot.
    @param device: the machine as a Home Assistant device, or None when
        discovery is off (C{--mqtt-discovery-prefix ''}).
    """

    name = "mqtt-publisher"

    def __init__(
        self,
        *,
        clock: IReactorTime,
        interval: float,
        topics: Topics,
        device: Device | None,
        snapshot: Callable[[], JSONMapping],
        alerts: CurrentAlerts,
        broker: str = "",
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._tick = guarded(self.refresh, "MQTT state")
        super().__init__(interval, self._tick)
        self.clock = clock
        self._clock = clock
        self._interval = interval
        self._topics = topics
        self._device = device
        self._snapshot = snapshot
        self._alerts = alerts
        self._broker = broker
        self._wall = wall
        self._session: Session | None = None
        self._pending_state: bytes | None = None
        self._wanted: dict[str, bytes] = {}
        self._sent: dict[str, bytes] = {}
        self._published_this_run: set[str] = set()
        self._held_topics: set[str] = set()
        self._busy_since: float | None = None
        self.publishes = 0
        self.publish_failures = 0
        self.states_replaced = 0
        self.last_publish: float | None = None
        self._slow = Episode(
            _log,
            "MQTT broker {broker} has not acknowledged the last messages for {seconds:.0f} s; "
            "keeping only the newest state",
            "MQTT broker {broker} acknowledges again ({count} intervals without)",
        )
        self._failing = Episode(
            _log,
            "MQTT publishing failed ({reason}); trying again next interval",
            "MQTT publishing works again after {count} failed batches",
        )

    def state(self) -> JSONObject:
        """The publisher's part of C{/health}'s C{"mqtt"}."""
        return {
            "publishes": self.publishes,
            "publish_failures": self.publish_failures,
            "states_replaced": self.states_replaced,
            "last_publish": self.last_publish,
            "pending_state": self._pending_state is not None,
            "entities": len(self._wanted),
        }

    # The link tells of sessions.

    def connected(self, session: Session) -> None:
        """A new session: the broker may have lost what we sent before, so send it all."""
        self._session = session
        self._sent = {}
        self._busy_since = None
        if self._device is not None:
            held = f"{self._topics.discovery}/+/{self._device.node}/+/config"
            session.subscribe(held, self._held).addErrback(self._not_subscribed)
        self._tick()

    def _held(self, topic: str, payload: bytes, retained: bool) -> None:
        """A config the broker holds for this machine: removed unless still wanted.

        Weighed at the next refresh, not now: just after start the snapshot
        may not have every part yet (filesystems are measured in threads),
        and an entity removed then would only come back a moment later.
        """
        if retained and payload:
            self._held_topics.add(topic)

    def _not_subscribed(self, failure: Failure) -> None:
        _log.info(
            "MQTT: cannot read the broker's discovery configs ({reason}); "
            "entities removed while pistatsd was stopped stay",
            reason=failure.getErrorMessage(),
        )

    def disconnected(self) -> None:
        """The session is gone: hold the newest state until the next one."""
        self._session = None
        self._busy_since = None

    # Every interval, and at each new session.

    def refresh(self) -> None:
        """Make the messages of now and send them if the broker can take them."""
        snapshot = self._snapshot()
        alerts = tuple(self._alerts())
        state = json.dumps(
            state_document(snapshot, alerts), separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
        if self._pending_state is not None:
            self.states_replaced += 1
        self._pending_state = state
        if self._device is not None:
            configs = discovery_configs(self._device, self._topics, snapshot, alerts)
            self._wanted = {topic: encode(config) for topic, config in configs.items()}
            self._published_this_run |= self._held_topics - set(self._wanted)
            self._held_topics.clear()
        if self._busy_since is not None:
            waited = self._clock.seconds() - self._busy_since
            if waited >= self._interval:
                self._slow.happened(broker=self._broker, seconds=waited)
        self._send()

    def _batch(self) -> list[tuple[str, bytes]]:
        batch = [
            (topic, payload)
            for topic, payload in sorted(self._wanted.items())
            if self._sent.get(topic) != payload
        ]
        gone = (self._published_this_run | set(self._sent)) - set(self._wanted)
        batch.extend((topic, REMOVED) for topic in sorted(gone))
        if self._pending_state is not None:
            batch.append((self._topics.state, self._pending_state))
        return batch

    def _send(self) -> None:
        session = self._session
        if session is None or self._busy_since is not None:
            return
        batch = self._batch()
        if not batch:
            return
        self._busy_since = self._clock.seconds()
        # Taken: a newer state made meanwhile waits for the next batch.
        self._pending_state = None
        sending = [session.publish(topic, payload, retain=True) for topic, payload in batch]
        DeferredList(sending, consumeErrors=True).addCallback(self._sent_batch, session, batch)

    def _sent_batch(
        self,
        results: list[tuple[bool, object]],
        session: Session,
        batch: list[tuple[str, bytes]],
    ) -> None:
        failures = [value for ok, value in results if not ok]
        for (ok, _), (topic, payload) in zip(results, batch, strict=True):
            if not ok or topic == self._topics.state:
                continue
            if payload == REMOVED:
                self._sent.pop(topic, None)
                self._published_this_run.discard(topic)
            else:
                self._sent[topic] = payload
                self._published_this_run.add(topic)
        self.publishes += len(batch) - len(failures)
        self.publish_failures += len(failures)
        if session is not self._session:
            return
        self._busy_since = None
        self._slow.ended(broker=self._broker)
        if failures:
            failure = failures[0]
            if isinstance(failure, Failure) and not failure.check(ConnectionDone, ConnectionLost):
                self._failing.happened(reason=failure.getErrorMessage())
            if self._pending_state is None and batch[-1][0] == self._topics.state:
                # Not sent: keep it, unless a newer one came meanwhile.
                self._pending_state = batch[-1][1]
            return
        self.last_publish = self._wall()
        self._failing.ended()
        self._send()
