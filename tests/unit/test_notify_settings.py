"""[notify.NAME] and [smtp]: what is accepted, and the one-line errors for the rest."""

from __future__ import annotations

import os
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pistatsd.errors import StartupError
from pistatsd.notify.settings import MAX_NOTIFIERS, parse_settings


def _secret_file(case: SynchronousTestCase, text: str) -> str:
    fd, path = tempfile.mkstemp()
    os.write(fd, text.encode())
    os.close(fd)
    case.addCleanup(os.unlink, path)
    return path


SMTP = {"host": "smtp.example.org", "from": "pi@example.org"}


class NotifierTests(SynchronousTestCase):
    def error(self, extra: dict[str, object], environ: dict[str, str] | None = None) -> str:
        with self.assertRaises(StartupError) as caught:
            parse_settings(extra, environ or {})
        message = str(caught.exception)
        self.assertNotIn("\n", message)
        return message

    def test_ntfy_with_defaults(self) -> None:
        settings = parse_settings({"notify": {"phone": {"ntfy": "https://ntfy.sh/my-pi"}}}, {})
        (phone,) = settings.notifiers
        self.assertEqual(
            (phone.name, phone.kind, phone.target, phone.min_severity, phone.repeat),
            ("phone", "ntfy", "https://ntfy.sh/my-pi", "warning", 0.0),
        )
        self.assertIsNone(phone.token)
        self.assertIsNone(settings.smtp)

    def test_no_tables_no_notifiers(self) -> None:
        self.assertEqual(parse_settings({}, {}).notifiers, ())

    def test_all_keys(self) -> None:
        token = _secret_file(self, "tk_secret\n")
        settings = parse_settings(
            {
                "notify": {
                    "phone": {
                        "ntfy": "https://ntfy.example/pi",
                        "min-severity": "critical",
                        "repeat": 600,
                        "token-file": token,
                        "priority": "high",
                        "tags": ["pi"],
                    },
                    "hook": {"webhook": "http://127.0.0.1:9/hook"},
                    "mail": {"email": ["a@example.org", "b@example.org"]},
                },
                "smtp": {**SMTP, "user": "pi", "port": 2525, "tls": "none"},
            },
            {"PISTATSD_SMTP_PASSWORD": "pw-secret"},
        )
        phone, hook, mail = settings.notifiers
        self.assertEqual(phone.token, "tk_secret")
        self.assertEqual((phone.min_severity, phone.repeat), ("critical", 600.0))
        self.assertEqual((phone.priority, phone.tags), (4, ("pi",)))
        self.assertEqual(hook.kind, "webhook")
        self.assertEqual(mail.addresses, ("a@example.org", "b@example.org"))
        assert settings.smtp is not None
        self.assertEqual(
            (settings.smtp.port, settings.smtp.tls, settings.smtp.password),
            (2525, "none", "pw-secret"),
        )
        self.assertNotIn("tk_secret", repr(settings))
        self.assertNotIn("pw-secret", repr(settings))

    def test_ntfy_token_from_the_environment(self) -> None:
        settings = parse_settings(
            {"notify": {"phone": {"ntfy": "https://ntfy.sh/x"}}}, {"PISTATSD_NTFY_TOKEN": "tk_env"}
        )
        self.assertEqual(settings.notifiers[0].token, "tk_env")

    def test_bad_url(self) -> None:
        self.assertEqual(
            self.error({"notify": {"phone": {"ntfy": "ftp://x/y"}}}),
            "--config: [notify.phone] ntfy: must be an http(s) URL",
        )
        self.assertIn(
            "webhook: must be an http(s) URL",
            self.error({"notify": {"h": {"webhook": 3}}}),
        )

    def test_exactly_one_kind(self) -> None:
        for table in ({}, {"ntfy": "https://a/b", "webhook": "https://a/c"}):
            self.assertIn(
                "[notify.phone] needs exactly one of ntfy",
                self.error({"notify": {"phone": table}}),
            )

    def test_unknown_key_and_kind_specific_keys(self) -> None:
        self.assertIn(
            "unknown key 'colour'",
            self.error({"notify": {"p": {"ntfy": "https://a/b", "colour": 1}}}),
        )
        self.assertIn(
            "unknown key 'priority' for a webhook notifier",
            self.error({"notify": {"p": {"webhook": "https://a/b", "priority": 5}}}),
        )

    def test_severity_and_repeat(self) -> None:
        base = {"ntfy": "https://a/b"}
        self.assertIn(
            "min-severity: must be one of warning, critical",
            self.error({"notify": {"p": {**base, "min-severity": "info"}}}),
        )
        self.assertIn(
            "repeat: must be 0 (no reminders) or at least 60 seconds",
            self.error({"notify": {"p": {**base, "repeat": 5}}}),
        )
        self.assertIn(
            "repeat: must be a number", self.error({"notify": {"p": {**base, "repeat": "1h"}}})
        )
        self.assertIn(
            "repeat: must be between", self.error({"notify": {"p": {**base, "repeat": -1}}})
        )

    def test_bad_addresses(self) -> None:
        self.assertIn(
            "[notify.m] email: must be an email address",
            self.error({"notify": {"m": {"email": "not an address"}}, "smtp": SMTP}),
        )
        self.assertIn(
            "email: needs at least one address",
            self.error({"notify": {"m": {"email": []}}, "smtp": SMTP}),
        )

    def test_email_needs_smtp(self) -> None:
        self.assertEqual(
            self.error({"notify": {"m": {"email": "me@example.org"}}}),
            "--config: [notify.m] email: needs an [smtp] table (host, from) to send through",
        )

    def test_unreadable_token_file(self) -> None:
        self.assertIn(
            "[notify.p] token-file: cannot read /nonexistent/token",
            self.error(
                {"notify": {"p": {"ntfy": "https://a/b", "token-file": "/nonexistent/token"}}}
            ),
        )

    def test_bounded_number_of_notifiers(self) -> None:
        tables = {f"n{i}": {"ntfy": "https://a/b"} for i in range(MAX_NOTIFIERS + 1)}
        self.assertEqual(
            self.error({"notify": tables}),
            f"--config: [notify] defines {MAX_NOTIFIERS + 1} notifiers; at most {MAX_NOTIFIERS}",
        )

    def test_odd_names_are_quoted_on_one_line(self) -> None:
        message = self.error({"notify": {"a\nb": {"ntfy": "https://a/b"}}})
        self.assertIn('[notify."a\\nb"]', message)

    def test_notify_must_be_tables(self) -> None:
        self.assertIn("[notify] must be a table", self.error({"notify": "x"}))
        self.assertIn("[notify.p] must be a table", self.error({"notify": {"p": "x"}}))


class SMTPTests(SynchronousTestCase):
    def error(self, smtp: object, environ: dict[str, str] | None = None) -> str:
        with self.assertRaises(StartupError) as caught:
            parse_settings({"smtp": smtp}, environ or {})
        return str(caught.exception)

    def test_defaults(self) -> None:
        smtp = parse_settings({"smtp": SMTP}, {}).smtp
        assert smtp is not None
        self.assertEqual(
            (smtp.port, smtp.tls, smtp.user, smtp.timeout), (587, "starttls", None, 30.0)
        )

    def test_implicit_tls_defaults_to_465(self) -> None:
        smtp = parse_settings({"smtp": {**SMTP, "tls": "tls"}}, {}).smtp
        assert smtp is not None
        self.assertEqual(smtp.port, 465)

    def test_password_file(self) -> None:
        path = _secret_file(self, "s3cret-pw\n")
        smtp = parse_settings({"smtp": {**SMTP, "user": "pi", "password-file": path}}, {}).smtp
        assert smtp is not None
        self.assertEqual(smtp.password, "s3cret-pw")

    def test_errors(self) -> None:
        self.assertEqual(self.error({"from": "a@b.c"}), "--config: [smtp] host: is required")
        self.assertEqual(
            self.error({**SMTP, "tls": "ssl"}),
            "--config: [smtp] tls: must be one of starttls, tls, none",
        )
        self.assertIn("port: must be an integer", self.error({**SMTP, "port": 0}))
        self.assertIn("unknown key 'password'", self.error({**SMTP, "password": "x"}))
        self.assertIn("password-file: is required with a user", self.error({**SMTP, "user": "pi"}))
        self.assertIn(
            "user: is required with a password",
            self.error(SMTP, {"PISTATSD_SMTP_PASSWORD": "pw-secret"}),
        )
        self.assertIn("from: must be an email address", self.error({**SMTP, "from": "pi"}))

    def test_password_never_in_an_error(self) -> None:
        # Raised after the password is read: the message names the key, not the secret.
        message = self.error(
            {**SMTP, "user": "pi", "tls": "none", "cafile": "/ca.pem"},
            {"PISTATSD_SMTP_PASSWORD": "pw-secret"},
        )
        self.assertIn("cafile: has no use", message)
        self.assertNotIn("pw-secret", message)
