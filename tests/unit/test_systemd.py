"""systemd in memory: notify addresses, the notify service and its
environment, and the directives of the shipped unit files."""

from __future__ import annotations

import shlex

from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.systemd import (
    SystemdNotifyService,
    notify_address,
    systemd_service,
    watchdog_interval,
)
from pistatsd.twistd_command import TWISTD_ARGS
from tests.systemd_units import SERVICE, SOCKET, unit

# -- the helper, in memory or on a local socket -------------------------------


class NotifyAddressTests(SynchronousTestCase):
    def test_forms(self):
        self.assertEqual(notify_address("/run/systemd/notify"), "/run/systemd/notify")
        self.assertEqual(notify_address("@abstract"), "\0abstract")
        self.assertIsNone(notify_address("vsock:2:1234"))
        self.assertIsNone(notify_address("relative/path"))
        self.assertIsNone(notify_address("@"))


class RecordingNotifier:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, message: str) -> bool:
        self.sent.append(message)
        return True


class ServiceTests(SynchronousTestCase):
    def test_ready_watchdog_stopping(self):
        reactor, notifier = MemoryReactorClock(), RecordingNotifier()
        service = SystemdNotifyService(
            notifier, reactor, watchdog_interval=0.1, pid=1234, status="serving tcp:8888"
        )
        service.startService()
        self.assertEqual(notifier.sent, [], "nothing before the reactor runs")
        reactor.run()
        self.assertEqual(
            notifier.sent, ["READY=1\nSTATUS=serving tcp:8888\nMAINPID=1234", "WATCHDOG=1"]
        )
        reactor.pump([0.1] * 5)
        self.assertEqual(notifier.sent.count("WATCHDOG=1"), 6)
        service.stopService()
        self.assertEqual(notifier.sent[-1], "STOPPING=1\nSTATUS=stopping")
        reactor.pump([0.1] * 5)
        self.assertEqual(notifier.sent.count("WATCHDOG=1"), 6)
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_no_watchdog(self):
        reactor, notifier = MemoryReactorClock(), RecordingNotifier()
        service = SystemdNotifyService(notifier, reactor, pid=1)
        service.startService()
        reactor.run()
        reactor.pump([10] * 10)
        service.stopService()
        self.assertEqual(len(notifier.sent), 2)
        self.assertTrue(notifier.sent[0].startswith("READY=1\n"))

    def test_stopped_before_the_reactor_ran(self):
        reactor, notifier = MemoryReactorClock(), RecordingNotifier()
        service = SystemdNotifyService(notifier, reactor, watchdog_interval=1.0, pid=1)
        service.startService()
        service.stopService()
        reactor.run()
        reactor.pump([1.0] * 3)
        self.assertEqual(notifier.sent, ["STOPPING=1\nSTATUS=stopping"])

    def test_ping_failure_does_not_stop_the_loop(self):
        reactor = MemoryReactorClock()

        class Broken(RecordingNotifier):
            def send(self, message: str) -> bool:
                super().send(message)
                if message == "WATCHDOG=1":
                    raise RuntimeError("boom")
                return True

        notifier = Broken()
        service = SystemdNotifyService(notifier, reactor, watchdog_interval=1.0, pid=1)
        service.startService()
        reactor.run()
        reactor.pump([1.0] * 3)
        self.assertEqual(notifier.sent.count("WATCHDOG=1"), 4)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 4)
        service.stopService()


class EnvironmentTests(SynchronousTestCase):
    def test_watchdog_interval(self):
        self.assertEqual(watchdog_interval({"WATCHDOG_USEC": "200000"}, 5), 0.1)
        self.assertEqual(
            watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "5"}, 5), 15.0
        )
        self.assertIsNone(watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "6"}, 5))
        self.assertIsNone(watchdog_interval({}, 5))
        for bad in ("0", "-5", "soon"):
            self.assertIsNone(watchdog_interval({"WATCHDOG_USEC": bad}, 5))

    def test_systemd_service(self):
        self.assertIsNone(systemd_service(Clock(), {}))
        self.assertIsNone(systemd_service(Clock(), {"NOTIFY_SOCKET": "vsock:2:1"}))
        service = systemd_service(
            Clock(), {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000000"}, pid=7
        )
        self.assertIsInstance(service, SystemdNotifyService)
        self.assertEqual(service.notifier.address, "\0x")
        self.assertEqual((service.watchdog_interval, service.pid), (0.5, 7))


# -- the shipped unit files --------------------------------------------------


def test_service_unit_directives():
    service = unit(SERVICE)["Service"]

    def one(key: str) -> str:
        assert key in service, key
        return service[key][-1]

    assert one("Type") == "notify"
    assert one("NotifyAccess") == "main"
    assert one("WatchdogSec")
    assert one("Restart") == "on-failure"
    assert one("DynamicUser") == "yes"
    assert one("StateDirectory") == "pistatsd"
    assert one("LogsDirectory") == "pistatsd"
    for key in ("ProtectSystem",):
        assert one(key) == "strict"
    for key in ("ProtectHome", "PrivateTmp", "NoNewPrivileges", "MemoryDenyWriteExecute"):
        assert one(key) == "yes", key
    assert one("RestrictAddressFamilies").split() == ["AF_INET", "AF_INET6", "AF_UNIX"]
    assert "@system-service" in service["SystemCallFilter"]
    # psutil reads /proc/stat, /proc/meminfo...: ProcSubset=pid would hide them.
    assert service.get("ProcSubset", ["all"])[-1] == "all"
    # The process list needs every /proc/<pid>: invisible/noaccess/ptraceable would
    # leave a dynamic user its own processes only.
    assert service.get("ProtectProc", ["default"])[-1] == "default"
    # The pistatsd command: twistd --nodaemon --pidfile= pistatsd (pistatsd.twistd_command).
    argv = shlex.split(one("ExecStart"))
    assert argv[:3] == ["/opt/pistatsd/bin/pistatsd", "--state-dir", "%S/pistatsd"]
    assert TWISTD_ARGS == ("--nodaemon", "--pidfile=", "pistatsd")
    socket_unit = unit(SOCKET)["Socket"]
    assert socket_unit["ListenStream"] == ["0.0.0.0:8888"]
