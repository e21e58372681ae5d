"""What a notification says: which changes make one, and the webhook, ntfy and email forms."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import UTC, datetime

from twisted.trial.unittest import SynchronousTestCase

from pistatsd.alerts.events import AlertChange, Severity, State
from pistatsd.notify.messages import (
    email_message,
    message_for,
    ntfy_headers,
    probe_message,
    reminder_of,
    webhook_body,
)

T0 = datetime(2026, 12, 1, 12, 1, tzinfo=UTC).timestamp()


def change(
    state: State,
    previous: State,
    *,
    severity: Severity = "warning",
    value: float | None = 93.1,
    time: float = T0,
) -> AlertChange:
    return AlertChange(
        name="filesystem-full:/boot",
        series="filesystems./boot.percent",
        state=state,
        previous=previous,
        time=time,
        value=value,
        severity=severity,
    )


class WhichChangesTests(SynchronousTestCase):
    def test_fired_and_resolved_notify(self) -> None:
        fired = message_for(change("firing", "pending"), "pi")
        resolved = message_for(change("ok", "firing", value=80.0), "pi")
        assert fired is not None and resolved is not None
        self.assertEqual((fired.event, fired.state), ("firing", "firing"))
        self.assertEqual((resolved.event, resolved.state), ("resolved", "ok"))

    def test_pending_changes_do_not(self) -> None:
        self.assertIsNone(message_for(change("pending", "ok"), "pi"))
        self.assertIsNone(message_for(change("ok", "pending"), "pi"))

    def test_firing_without_pending(self) -> None:
        message = message_for(change("firing", "ok"), "pi")
        assert message is not None
        self.assertEqual(message.event, "firing")


class FormatTests(SynchronousTestCase):
    def setUp(self) -> None:
        message = message_for(change("firing", "pending"), "raspberrypi")
        assert message is not None
        self.fired = message

    def test_text(self) -> None:
        self.assertEqual(
            self.fired.text,
            "filesystem-full:/boot is firing: filesystems./boot.percent = 93.1 (since 12:01 UTC)",
        )
        self.assertEqual(self.fired.title, "[warning] filesystem-full:/boot firing on raspberrypi")

    def test_reminder_and_resolved_text(self) -> None:
        reminder = reminder_of(self.fired)
        self.assertEqual(
            reminder.text,
            "filesystem-full:/boot is still firing: filesystems./boot.percent = 93.1"
            " (since 2026-12-01 12:01 UTC)",
        )
        resolved = message_for(change("ok", "firing", value=None, time=T0 + 60), "pi")
        assert resolved is not None
        self.assertEqual(
            resolved.text,
            "filesystem-full:/boot resolved: filesystems./boot.percent = no value yet"
            " (since 12:02 UTC)",
        )

    def test_webhook_body(self) -> None:
        document = json.loads(webhook_body(self.fired))
        self.assertEqual(
            document,
            {
                "alert": "filesystem-full:/boot",
                "state": "firing",
                "event": "firing",
                "severity": "warning",
                "series": "filesystems./boot.percent",
                "value": 93.1,
                "since": "2026-12-01T12:01:00Z",
                "host": "raspberrypi",
                "message": self.fired.text,
            },
        )

    def test_webhook_body_without_a_finite_value(self) -> None:
        message = message_for(change("firing", "ok", value=float("nan")), "pi")
        assert message is not None
        self.assertIsNone(json.loads(webhook_body(message))["value"])

    def test_ntfy_priorities_and_tags(self) -> None:
        critical = message_for(change("firing", "pending", severity="critical"), "pi")
        resolved = message_for(change("ok", "firing", severity="critical"), "pi")
        assert critical is not None and resolved is not None
        self.assertEqual(
            ntfy_headers(critical),
            {
                "Title": "[critical] filesystem-full:/boot firing on pi",
                "Priority": "5",
                "Tags": "critical,rotating_light",
            },
        )
        self.assertEqual(ntfy_headers(self.fired)["Priority"], "4")
        self.assertEqual(ntfy_headers(resolved)["Priority"], "2")
        self.assertEqual(ntfy_headers(resolved)["Tags"], "critical,white_check_mark")
        self.assertEqual(
            ntfy_headers(reminder_of(self.fired))["Tags"], "warning,rotating_light,repeat"
        )

    def test_ntfy_overrides(self) -> None:
        headers = ntfy_headers(self.fired, priority=1, tags=("pi", "warning"))
        self.assertEqual((headers["Priority"], headers["Tags"]), ("1", "warning,rotating_light,pi"))

    def test_ntfy_title_outside_ascii(self) -> None:
        message = message_for(change("firing", "ok"), "café")
        assert message is not None
        title = ntfy_headers(message)["Title"]
        self.assertTrue(title.startswith("=?utf-8?"), title)
        title.encode("ascii")

    def test_email(self) -> None:
        raw = email_message(self.fired, "pi@example.org", ("me@example.org", "you@example.org"), T0)
        mail = email.message_from_bytes(raw, policy=email.policy.default)
        self.assertEqual(mail["Subject"], self.fired.title)
        self.assertEqual(mail["From"], "pi@example.org")
        self.assertEqual(mail["To"], "me@example.org, you@example.org")
        self.assertEqual(mail["Date"].datetime, datetime(2026, 12, 1, 12, 1, tzinfo=UTC))
        self.assertTrue(mail["Message-ID"].endswith("@example.org>"), mail["Message-ID"])
        body = mail.get_content()
        self.assertIn(self.fired.text, body)
        self.assertIn("Since:    2026-12-01T12:01:00Z", body)

    def test_probe(self) -> None:
        probe = probe_message("pi", T0)
        self.assertIn("test", probe.title)
        self.assertEqual(json.loads(webhook_body(probe))["event"], "test")
        self.assertEqual(ntfy_headers(probe)["Tags"], "test_tube")


class PrintableTests(SynchronousTestCase):
    def test_machine_names_cannot_break_headers(self) -> None:
        odd = AlertChange(
            name="filesystem-full:/mnt/a\nb\udce9",
            series="filesystems./mnt/a\nb\udce9.percent",
            state="firing",
            previous="ok",
            time=T0,
            value=91.0,
            severity="warning",
        )
        message = message_for(odd, "pi")
        assert message is not None
        self.assertEqual(message.alert, "filesystem-full:/mnt/a?b\\udce9")
        self.assertNotIn("\n", ntfy_headers(message)["Title"])
        raw = email_message(message, "pi@example.org", ("me@example.org",), T0)
        mail = email.message_from_bytes(raw, policy=email.policy.default)
        self.assertEqual(mail["Subject"], message.title)
        json.loads(webhook_body(message))
