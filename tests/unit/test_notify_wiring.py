"""The notifiers as the composition root builds them: inert without any, health, metrics."""

from __future__ import annotations

import os
import tempfile

from prometheus_client import CollectorRegistry, generate_latest
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.alerts.events import AlertChange
from pistatsd.config import Config
from pistatsd.errors import StartupError
from pistatsd.notify.wiring import notify_parts
from tests.imports import import_closure
from tests.influxd import capture_all_logs, rendered

FIRING = AlertChange(
    name="hot",
    series="temperature.celsius",
    state="firing",
    previous="pending",
    time=1000.0,
    value=81.0,
    severity="critical",
)


def config(**extra: object) -> Config:
    return Config(extra=extra)


class InertTests(SynchronousTestCase):
    def test_no_notifiers(self) -> None:
        parts = notify_parts(config(), MemoryReactorClock())  # type: ignore[arg-type]
        self.assertEqual(parts.services, ())
        self.assertEqual(parts.metrics, ())
        self.assertEqual(parts.health(), {"notifiers": {}})
        self.assertEqual(self.successResultOf(parts.send_test()), {})
        parts.listener(FIRING)

    def test_bad_table_stops_start_up(self) -> None:
        with self.assertRaises(StartupError):
            notify_parts(config(notify={"p": {"ntfy": "nope"}}), MemoryReactorClock())  # type: ignore[arg-type]


class CleartextTests(SynchronousTestCase):
    def test_credentials_over_http_are_warned_of_once(self) -> None:
        events = capture_all_logs(self)
        notify_parts(
            config(
                notify={
                    "far": {"webhook": "http://u:pw-secret@hooks.example/x"},
                    "near": {"webhook": "http://u:pw-secret@127.0.0.1/x"},
                    "safe": {"webhook": "https://u:pw-secret@hooks.example/x"},
                    "open": {"webhook": "http://hooks.example/x"},
                }
            ),
            MemoryReactorClock(),  # type: ignore[arg-type]
        )
        warned = [e["notifier"] for e in events if "unencrypted" in e.get("log_format", "")]
        self.assertEqual(warned, ["far"])
        self.assertNotIn("pw-secret", rendered(events))


class BuiltTests(SynchronousTestCase):
    def setUp(self) -> None:
        fd, self.token_file = tempfile.mkstemp()
        os.write(fd, b"tk_tokensecret\n")
        os.close(fd)
        self.addCleanup(os.unlink, self.token_file)
        self.reactor = MemoryReactorClock()
        self.events = capture_all_logs(self)
        self.parts = notify_parts(
            config(
                notify={
                    "phone": {
                        "ntfy": "https://127.0.0.1:8443/topic-secret",
                        "token-file": self.token_file,
                    },
                    "mail": {"email": "me@example.org", "min-severity": "critical"},
                },
                smtp={"host": "127.0.0.1", "from": "pi@example.org", "user": "pi"},
            ),
            self.reactor,  # type: ignore[arg-type]
            environ={"PISTATSD_SMTP_PASSWORD": "pw-smtpsecret"},
        )
        (self.service,) = self.parts.services
        self.service.startService()
        self.addCleanup(self.service.stopService)

    def test_a_change_goes_out_on_every_notifier(self) -> None:
        self.parts.listener(FIRING)
        # The HTTP client and the SMTP client each connect (in memory).
        self.assertEqual(sorted(port for _, port, *_ in self.reactor.tcpClients), [587, 8443])
        health = self.parts.health()["notifiers"]
        assert isinstance(health, dict)
        self.assertEqual(set(health), {"phone", "mail"})
        self.assertEqual(health["phone"]["kind"], "ntfy")
        self.assertEqual(health["phone"]["target"], "https://127.0.0.1:8443/***")
        self.assertEqual(health["mail"]["target"], "me@example.org via 127.0.0.1:587")
        self.assertEqual(health["phone"]["queued"], 1)

    def test_metrics(self) -> None:
        registry = CollectorRegistry()
        for collector in self.parts.metrics:
            registry.register(collector)
        text = generate_latest(registry).decode()
        for line in (
            'pistatsd_notify_sent_total{notifier="phone"} 0.0',
            'pistatsd_notify_failed_total{notifier="mail"} 0.0',
            'pistatsd_notify_dropped_total{notifier="phone"} 0.0',
            'pistatsd_notify_queued{notifier="mail"} 0.0',
        ):
            self.assertIn(line, text)

    def test_secrets_appear_nowhere(self) -> None:
        self.parts.listener(FIRING)
        self.reactor.advance(3600.0)
        d = self.parts.send_test()
        self.reactor.advance(3600.0)
        said = self.successResultOf(d)
        self.assertEqual(set(said), {"phone", "mail"})
        shown = rendered(self.events) + repr(self.parts.health()) + repr(said)
        for secret in ("tk_tokensecret", "topic-secret", "pw-smtpsecret"):
            self.assertNotIn(secret, shown)
        self.assertIn("cannot deliver", shown, "the failures were logged")


class FootprintTests(SynchronousTestCase):
    def test_wiring_loads_neither_treq_nor_twisted_mail(self) -> None:
        loaded = import_closure("pistatsd.notify.wiring")
        self.assertIn("pistatsd.notify.settings", loaded, "the closure is followed")
        self.assertIn("twisted.application.service", loaded)
        for heavy in ("treq", "twisted.mail", "twisted.mail.smtp", "pistatsd.notify.http"):
            self.assertNotIn(heavy, loaded)
        self.assertNotIn("pistatsd.notify.smtp", loaded)
        # Delivering waits for a configured notifier too.
        self.assertNotIn("pistatsd.notify.delivery", loaded)

    def test_the_senders_do_load_them(self) -> None:
        # The check above would pass on a broken closure; these prove it sees imports.
        self.assertIn("twisted.mail.smtp", import_closure("pistatsd.notify.smtp"))
        self.assertIn("treq.client", import_closure("pistatsd.notify.http"))
