"""The publisher and the broker link, with a fake session and a fake clock."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.alerts.events import AlertStatus
from pistatsd.influx.backoff import Backoff
from pistatsd.mqtt.discovery import Device, Topics
from pistatsd.mqtt.link import BrokerLink, LoginRefused
from pistatsd.mqtt.publisher import StatePublisher
from pistatsd.status import MQTT_OFF

TOPICS = Topics(prefix="pistatsd/pi", discovery="homeassistant")
DEVICE = Device(node="pistatsd_0123", name="pi", model="m", manufacturer="x", sw_version="1")


class FakeSession:
    """Records what is published; acknowledges at once, or when told (C{hold})."""

    def __init__(self, hold: bool = False) -> None:
        self.hold = hold
        self.sent: list[tuple[str, bytes, bool]] = []
        self.waiting: list[Deferred[Any]] = []
        self.lost: Deferred[None] = Deferred()
        self.closed = False
        self.aborted = False
        self.subscriptions: dict[str, Any] = {}

    def publish(self, topic: str, payload: bytes, *, retain: bool, qos: int = 1) -> Deferred[Any]:
        self.sent.append((topic, payload, retain))
        if not self.hold:
            return succeed(None)
        d: Deferred[Any] = Deferred()
        self.waiting.append(d)
        return d

    def subscribe(self, topic_filter: str, receive: Any) -> Deferred[Any]:
        self.subscriptions[topic_filter] = receive
        return succeed([0])

    def ack_all(self) -> None:
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.callback(None)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def topics(self) -> list[str]:
        return [topic for topic, _, _ in self.sent]

    def states(self) -> list[dict[str, Any]]:
        return [json.loads(p) for t, p, _ in self.sent if t == TOPICS.state]


class Machine:
    """A snapshot and alerts the test changes."""

    def __init__(self) -> None:
        self.cpu = 1.0
        self.mounts = ["/"]
        self.sensors: dict[str, dict[str, Any]] = {"room": {"value": 20.0, "unit": "C"}}
        self.alerts: list[AlertStatus] = []

    def snapshot(self) -> dict[str, Any]:
        return {
            "cpu": {"percent": self.cpu},
            "filesystems": [{"mount": m, "percent": 1.0} for m in self.mounts],
            "sensors": self.sensors,
        }

    def current_alerts(self) -> list[AlertStatus]:
        return self.alerts


def publisher(clock: Clock, machine: Machine, device: Device | None = DEVICE) -> StatePublisher:
    return StatePublisher(
        clock=clock,
        interval=30,
        topics=TOPICS,
        device=device,
        snapshot=machine.snapshot,
        alerts=machine.current_alerts,
        broker="broker:1883",
    )


class PublisherTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.machine = Machine()
        self.publisher = publisher(self.clock, self.machine)

    def test_nothing_kept_but_the_newest_state_while_disconnected(self) -> None:
        self.publisher.startService()
        for cpu in range(2, 10):
            self.machine.cpu = float(cpu)
            self.clock.advance(30)
        self.assertEqual(self.publisher.state()["states_replaced"], 8)
        session = FakeSession()
        self.publisher.connected(session)
        states = session.states()
        self.assertEqual([s["cpu_percent"] for s in states], [9.0])
        self.assertTrue(all(retain for _, _, retain in session.sent))
        self.publisher.stopService()

    def test_state_comes_after_the_configs_it_needs(self) -> None:
        session = FakeSession()
        self.publisher.connected(session)
        topics = session.topics()
        self.assertEqual(topics[-1], TOPICS.state)
        configs = [t for t in topics if t.endswith("/config")]
        self.assertEqual(len(configs), len(topics) - 1)
        self.assertIn("homeassistant/sensor/pistatsd_0123/cpu/config", configs)
        self.assertEqual(self.publisher.state()["entities"], len(configs))

    def test_unchanged_configs_are_not_sent_again(self) -> None:
        session = FakeSession()
        self.publisher.connected(session)
        before = len(session.sent)
        self.machine.cpu = 50.0
        self.publisher.refresh()
        self.assertEqual(session.topics()[before:], [TOPICS.state])

    def test_removed_entities_get_an_empty_retained_config(self) -> None:
        self.machine.mounts = ["/", "/mnt/usb"]
        self.machine.alerts = [AlertStatus("hot", "temperature.celsius", "ok", 0.0, 40, "warning")]
        session = FakeSession()
        self.publisher.connected(session)
        usb = [t for t in session.topics() if "/fs_mnt_usb_" in t]
        alert = [t for t in session.topics() if "/alert_hot_" in t]
        room = [t for t in session.topics() if "/sensor_room_" in t]
        self.assertEqual((len(usb), len(alert), len(room)), (1, 1, 1))
        del session.sent[:]
        self.machine.mounts = ["/"]
        self.machine.alerts = []
        self.machine.sensors = {}
        self.publisher.refresh()
        removed = {t for t, payload, retain in session.sent if payload == b"" and retain}
        self.assertEqual(removed, {usb[0], alert[0], room[0]})
        del session.sent[:]
        self.publisher.refresh()
        self.assertEqual(session.topics(), [TOPICS.state])

    def test_configs_left_from_before_a_restart_are_removed(self) -> None:
        """The broker holds a config of this machine the daemon no longer has (a disk
        unplugged while it was stopped): the next batch empties it."""
        session = FakeSession()
        self.publisher.connected(session)
        (held,) = session.subscriptions
        self.assertEqual(held, "homeassistant/+/pistatsd_0123/+/config")
        receive = session.subscriptions[held]
        stale = "homeassistant/sensor/pistatsd_0123/fs_mnt_usb_123456/config"
        wanted = "homeassistant/sensor/pistatsd_0123/cpu/config"
        receive(stale, b'{"name": "Filesystem /mnt/usb"}', True)
        receive(wanted, b'{"name": "CPU"}', True)
        receive("homeassistant/sensor/pistatsd_0123/live/config", b"{}", False)  # not retained
        self.assertEqual(session.sent[-1][0], TOPICS.state, "nothing removed before a refresh")
        del session.sent[:]
        self.publisher.refresh()
        self.assertEqual(
            [(t, p) for t, p, _ in session.sent if t.endswith("/config")], [(stale, b"")]
        )

    def test_new_entities_appear_without_restart(self) -> None:
        session = FakeSession()
        self.publisher.connected(session)
        del session.sent[:]
        self.machine.sensors = {**self.machine.sensors, "cellar": {"value": 9.0, "unit": "C"}}
        self.publisher.refresh()
        new = [t for t in session.topics() if t.endswith("/config")]
        self.assertEqual(len(new), 1)
        self.assertIn("/sensor_cellar_", new[0])

    def test_one_batch_in_flight_and_newest_state_only_when_slow(self) -> None:
        session = FakeSession(hold=True)
        self.publisher.connected(session)
        first = len(session.sent)
        with capturedLogs() as events:
            for cpu in (2.0, 3.0, 4.0):
                self.machine.cpu = cpu
                self.clock.advance(30)
                self.publisher.refresh()
        self.assertEqual(len(session.sent), first, "nothing more sent before the acks")
        self.assertEqual(
            [e["log_format"] for e in events if "not acknowledged" in e["log_format"]],
            [events[0]["log_format"]],
        )
        with capturedLogs() as events:
            session.ack_all()
        self.assertTrue(any("acknowledges again" in e["log_format"] for e in events))
        self.assertEqual([s["cpu_percent"] for s in session.states()], [1.0, 4.0])
        session.ack_all()
        self.assertEqual(self.publisher.state()["states_replaced"], 2)
        self.assertFalse(self.publisher.state()["pending_state"])

    def test_a_new_session_gets_everything_again(self) -> None:
        first = FakeSession()
        self.publisher.connected(first)
        self.publisher.disconnected()
        second = FakeSession()
        self.publisher.connected(second)
        self.assertEqual(sorted(first.topics()), sorted(second.topics()))

    def test_failed_batch_is_counted_and_retried_next_interval(self) -> None:
        class Refusing(FakeSession):
            def publish(self, topic: str, payload: bytes, *, retain: bool, qos: int = 1) -> Any:
                self.sent.append((topic, payload, retain))
                return fail(ValueError("payload too large"))

        session = Refusing()
        with capturedLogs() as events:
            self.publisher.connected(session)
            self.publisher.refresh()
        self.assertEqual(self.publisher.state()["publish_failures"], len(session.sent))
        self.assertEqual(self.publisher.state()["publishes"], 0)
        self.assertEqual(len([e for e in events if "publishing failed" in e["log_format"]]), 1)
        self.assertTrue(self.publisher.state()["pending_state"])

    def test_a_failing_snapshot_does_not_break_the_session(self) -> None:
        def broken() -> dict[str, Any]:
            raise RuntimeError("no snapshot yet")

        failing = StatePublisher(
            clock=self.clock,
            interval=30,
            topics=TOPICS,
            device=DEVICE,
            snapshot=broken,
            alerts=self.machine.current_alerts,
        )
        session = FakeSession()
        with capturedLogs() as events:
            failing.connected(session)
        self.assertEqual(session.sent, [])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertTrue(any("MQTT state" in str(e.get("what")) for e in events))

    def test_no_discovery_without_a_device(self) -> None:
        plain = publisher(self.clock, self.machine, device=None)
        session = FakeSession()
        plain.connected(session)
        self.assertEqual(session.topics(), [TOPICS.state])


class Connections:
    """What the link's C{connect} returns, one result per attempt."""

    def __init__(self, *results: object) -> None:
        self.results = list(results)
        self.attempts = 0

    def __call__(self) -> Deferred[Any]:
        self.attempts += 1
        result = self.results.pop(0) if self.results else ConnectionRefusedError()
        if isinstance(result, Exception):
            return fail(result)
        if isinstance(result, Deferred):
            return result
        return succeed(result)


class Listener:
    def __init__(self) -> None:
        self.sessions: list[object] = []
        self.disconnects = 0

    def connected(self, session: object) -> None:
        self.sessions.append(session)

    def disconnected(self) -> None:
        self.disconnects += 1


def link(clock: Clock, connect: Connections, listener: Listener) -> BrokerLink:
    return BrokerLink(
        clock=clock,
        connect=connect,
        broker="broker:1883",
        availability=TOPICS.availability,
        listener=listener,
        backoff=Backoff(initial=1.0, maximum=60.0, random=lambda: 1.0),
        stop_timeout=2.0,
    )


class LinkTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.listener = Listener()

    def test_backoff_grows_and_is_capped(self) -> None:
        connect = Connections()
        service = link(self.clock, connect, self.listener)
        with capturedLogs() as events:
            service.startService()
            delays = []
            for _ in range(9):
                (call,) = self.clock.getDelayedCalls()
                delays.append(call.getTime() - self.clock.seconds())
                self.clock.advance(delays[-1])
        self.assertEqual(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60])
        self.assertEqual(connect.attempts, 10)
        unreachable = [e for e in events if "unreachable" in e["log_format"]]
        self.assertEqual(len(unreachable), 1, "one line per episode")
        self.assertEqual(service.state()["connect_failures"], 10)
        self.assertTrue(service.state()["retrying"])

    def test_online_then_offline_on_stop(self) -> None:
        session = FakeSession()
        service = link(self.clock, Connections(session), self.listener)
        with capturedLogs() as events:
            service.startService()
        self.assertEqual(session.sent, [(TOPICS.availability, b"online", True)])
        self.assertEqual(self.listener.sessions, [session])
        self.assertTrue(service.state()["connected"])
        self.assertEqual([e["log_format"] for e in events], ["MQTT connected to {broker}"])
        stopped = service.stopService()
        self.assertEqual(session.sent[-1], (TOPICS.availability, b"offline", True))
        self.assertTrue(session.closed)
        self.assertNoResult(stopped)
        session.lost.callback(None)
        self.successResultOf(stopped)
        self.assertEqual(self.listener.disconnects, 1)

    def test_stop_is_bounded_when_the_broker_does_not_answer(self) -> None:
        session = FakeSession(hold=True)
        service = link(self.clock, Connections(session), self.listener)
        service.startService()
        stopped = service.stopService()
        self.clock.advance(2)  # no PUBACK for offline
        self.assertTrue(session.closed)
        self.assertNoResult(stopped)
        self.clock.advance(2)  # the connection does not close either
        self.assertTrue(session.aborted)
        self.successResultOf(stopped)

    def test_wrong_password_is_one_clear_line_then_retries(self) -> None:
        session = FakeSession()
        refused = LoginRefused("not authorized")
        connect = Connections(refused, refused, refused, session)
        service = link(self.clock, connect, self.listener)
        with capturedLogs() as events:
            service.startService()
            self.clock.advance(1)
            self.clock.advance(2)
            self.clock.advance(4)
        lines = [e for e in events if "refused the login" in e["log_format"]]
        self.assertEqual(len(lines), 1)
        self.assertEqual(lines[0]["reason"], "not authorized")
        self.assertIn("check --mqtt-user", lines[0]["log_format"])
        self.assertEqual(self.listener.sessions, [session])
        self.assertTrue(any("accepted the login" in e["log_format"] for e in events))

    def test_a_dropped_connection_reconnects_with_backoff(self) -> None:
        first, second = FakeSession(), FakeSession()
        service = link(self.clock, Connections(first, second), self.listener)
        service.startService()
        with capturedLogs() as events:
            first.lost.callback(None)
        self.assertFalse(service.state()["connected"])
        self.assertEqual(self.listener.disconnects, 1)
        self.assertEqual(len([e for e in events if "lost" in e["log_format"]]), 1)
        self.clock.advance(1)
        self.assertEqual(self.listener.sessions, [first, second])
        self.assertEqual(service.state()["reconnects"], 1)
        with capturedLogs() as events:
            self.clock.advance(60)
        self.assertTrue(any("stable again" in e["log_format"] for e in events))

    def test_stop_while_connecting_cancels(self) -> None:
        pending: Deferred[Any] = Deferred()
        service = link(self.clock, Connections(pending), self.listener)
        service.startService()
        self.successResultOf(service.stopService())
        self.assertTrue(pending.called, "the attempt was cancelled")
        self.assertEqual(self.clock.getDelayedCalls(), [], "and no retry is scheduled")
        self.assertEqual(self.listener.sessions, [])

    def test_health_has_the_keys_of_the_off_shape(self) -> None:
        from pistatsd.mqtt.settings import Broker
        from pistatsd.mqtt.wiring import MQTTHealth

        service = link(self.clock, Connections(), self.listener)
        health = MQTTHealth(
            broker=Broker("broker", 1883, False),
            topics=TOPICS,
            discovery=True,
            link=service,
            publisher=publisher(self.clock, Machine()),
        )
        self.assertEqual(set(health()), set(MQTT_OFF))
        self.assertIs(health()["enabled"], True)


class FailureReasonTests(SynchronousTestCase):
    def test_reason_of_a_bare_exception_is_its_name(self) -> None:
        from pistatsd.mqtt.link import _reason

        self.assertEqual(_reason(Failure(ValueError())), "ValueError")
