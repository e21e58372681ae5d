"""Staying connected to the broker: reconnect with backoff, availability, a bounded goodbye.

A broker that is down, slow, refusing the login or dropping connections
never blocks the daemon: every attempt is bounded in time, the next one
waits an exponentially growing, jittered delay (L{pistatsd.influx.backoff}),
and each kind of trouble is logged once per episode.  Once logged in, the
link publishes C{online} (retained) on the availability topic, whose
C{offline} the broker holds as the last will; on a clean stop it publishes
C{offline} itself and waits for the broker's acknowledgement, briefly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred, TimeoutError, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from pistatsd.episodes import Episode
from pistatsd.influx.backoff import Backoff
from pistatsd.jsontypes import JSONObject

_log = Logger()
_T = TypeVar("_T")

ONLINE = b"online"
OFFLINE = b"offline"

#: A connection that lasted this long ends an episode of dropped connections.
STABLE_AFTER = 60.0


class LoginRefused(Exception):
    """The broker refused the user name or password (CONNACK 4 or 5)."""


class Session(Protocol):
    """A logged-in MQTT session (L{pistatsd.mqtt.client.MQTTSession}, or a fake in tests)."""

    lost: Deferred[None]

    def publish(
        self, topic: str, payload: bytes, *, retain: bool, qos: int = 1
    ) -> Deferred[object]:
        """Send one message; fires when the broker acknowledged it."""

    def subscribe(
        self, topic_filter: str, receive: Callable[[str, bytes, bool], None]
    ) -> Deferred[object]:
        """Receive C{(topic, payload, retained)} of the messages matching C{topic_filter}."""

    def close(self) -> None:
        """Disconnect cleanly (the broker then drops the last will)."""

    def abort(self) -> None:
        """Drop the connection at once."""


class SessionListener(Protocol):
    """Told when a session starts and ends (the publisher)."""

    def connected(self, session: Session) -> None: ...

    def disconnected(self) -> None: ...


def _reason(failure: Failure) -> str:
    return failure.getErrorMessage() or failure.type.__name__  # type: ignore[union-attr]


class BrokerLink(Service):
    """Keeps one session with the broker open while running.

    @param connect: opens a session (bounded in time) or fails.
    @param broker: C{host:port}, for log lines (never the URL or a password).
    @param stop_timeout: how long a stop waits for C{offline} to be acknowledged
        and the connection to close.
    """

    name = "mqtt-link"

    def __init__(
        self,
        *,
        clock: IReactorTime,
        connect: Callable[[], Deferred[Session]],
        broker: str,
        availability: str,
        listener: SessionListener,
        backoff: Backoff | None = None,
        stop_timeout: float = 3.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._connect = connect
        self._broker = broker
        self._availability = availability
        self._listener = listener
        self._backoff = backoff if backoff is not None else Backoff(initial=1.0, maximum=300.0)
        self._stop_timeout = stop_timeout
        self._wall = wall
        self._session: Session | None = None
        self._attempt: Deferred[Session] | None = None
        self._retry: IDelayedCall | None = None
        self._stable: IDelayedCall | None = None
        self._stopping = False
        self.connections = 0
        self.connect_failures = 0
        self.connected_since: float | None = None
        self.last_error: str | None = None
        self.last_error_time: float | None = None
        self._unreachable = Episode(
            _log,
            "MQTT broker {broker} unreachable ({reason}); retrying with backoff",
            "MQTT connected to {broker} after {count} failed attempts",
        )
        self._refused = Episode(
            _log,
            "MQTT broker {broker} refused the login ({reason}): check --mqtt-user and the "
            "password; retrying with backoff",
            "MQTT broker {broker} accepted the login after {count} refusals",
        )
        self._drops = Episode(
            _log,
            "MQTT connection to {broker} lost ({reason}); reconnecting",
            "MQTT connection to {broker} stable again after {count} drops",
        )

    @property
    def connected(self) -> bool:
        """Whether a session is open now."""
        return self._session is not None

    def state(self) -> JSONObject:
        """The link's part of C{/health}'s C{"mqtt"}."""
        return {
            "connected": self.connected,
            "connected_since": self.connected_since,
            "connections": self.connections,
            "reconnects": max(0, self.connections - 1),
            "connect_failures": self.connect_failures,
            "retrying": self._retry is not None and self._retry.active(),
            "last_error": self.last_error,
            "last_error_time": self.last_error_time,
        }

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        self._try()

    def _try(self) -> None:
        self._retry = None
        attempt = self._attempt = self._connect()
        attempt.addCallbacks(self._up, self._failed)

    def _schedule(self) -> None:
        self._backoff.failed()
        self._retry = self._clock.callLater(self._backoff.delay(), self._try)

    def _error(self, reason: str) -> None:
        self.last_error = reason
        self.last_error_time = self._wall()

    def _failed(self, failure: Failure) -> None:
        self._attempt = None
        if self._stopping:
            return
        self.connect_failures += 1
        reason = _reason(failure)
        self._error(reason)
        if failure.check(LoginRefused):
            self._refused.happened(broker=self._broker, reason=reason)
        else:
            self._unreachable.happened(broker=self._broker, reason=reason)
        self._schedule()

    def _up(self, session: Session) -> None:
        self._attempt = None
        if self._stopping:
            session.close()
            return
        self._session = session
        self.connections += 1
        self.connected_since = self._wall()
        self._backoff.reset()
        ended = self._unreachable.ended(broker=self._broker)
        ended = self._refused.ended(broker=self._broker) or ended
        if self.connections == 1 and not ended:
            _log.info("MQTT connected to {broker}", broker=self._broker)
        self._stable = self._clock.callLater(STABLE_AFTER, self._held)
        session.publish(self._availability, ONLINE, retain=True).addErrback(
            self._publish_failed, session
        )
        self._listener.connected(session)
        # Last: a session already lost is then ended after it was begun.
        session.lost.addCallback(self._down, session)

    def _publish_failed(self, failure: Failure, session: Session) -> None:
        if session is self._session:
            self._error(_reason(failure))

    def _held(self) -> None:
        self._stable = None
        self._drops.ended(broker=self._broker)

    def _down(self, _: None, session: Session) -> None:
        if session is not self._session:
            return
        self._session = None
        self.connected_since = None
        if self._stable is not None and self._stable.active():
            self._stable.cancel()
        self._stable = None
        self._listener.disconnected()
        if self._stopping:
            return
        self._error("connection lost")
        self._drops.happened(broker=self._broker, reason="connection closed")
        self._schedule()

    def stopService(self) -> Deferred[None]:
        """Publish C{offline}, disconnect, stop retrying: bounded by C{stop_timeout}."""
        super().stopService()
        self._stopping = True
        for call in (self._retry, self._stable):
            if call is not None and call.active():
                call.cancel()
        self._retry = self._stable = None
        if self._attempt is not None:
            self._attempt.cancel()
        session = self._session
        if session is None:
            return succeed(None)
        goodbye = within(
            session.publish(self._availability, OFFLINE, retain=True),
            self._stop_timeout,
            self._clock,
        )

        def close(result: object) -> Deferred[None]:
            if isinstance(result, Failure):
                _log.info(
                    "MQTT: offline not acknowledged before stopping ({reason})",
                    reason=_reason(result),
                )
            session.close()
            closed: Deferred[None] = Deferred()
            session.lost.addBoth(lambda _: None if closed.called else closed.callback(None))
            return within(closed, self._stop_timeout, self._clock).addErrback(
                lambda _: session.abort()
            )

        return goodbye.addBoth(close)


def within(work: Deferred[_T], seconds: float, clock: IReactorTime) -> Deferred[_T]:
    """C{work}'s result, or a C{TimeoutError} after C{seconds}, leaving C{work} itself alone.

    twisted-mqtt's Deferreds cannot be cancelled (the library would later
    fire them a second time), so a deadline is kept on a Deferred of our own.
    """
    result: Deferred[_T] = Deferred()

    def expired() -> None:
        result.errback(TimeoutError(f"no answer within {seconds:g} s"))

    timer = clock.callLater(seconds, expired)

    def done(outcome: object) -> None:
        if timer.active():
            timer.cancel()
            if isinstance(outcome, Failure):
                result.errback(outcome)
            else:
                result.callback(outcome)  # type: ignore[arg-type]

    work.addBoth(done)
    return result
