"""What SMTP failures mean (retry or drop), and that their texts hold no transcript or password."""

from __future__ import annotations

import base64

from OpenSSL import SSL
from twisted.internet.error import ConnectionRefusedError
from twisted.mail.smtp import AUTHDeclinedError, SMTPConnectError, SMTPDeliveryError
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.errors import StartupError
from pistatsd.notify.delivery import Verdict
from pistatsd.notify.redact import Scrubber, password_secrets
from pistatsd.notify.settings import SMTPSettings
from pistatsd.notify.smtp import describe, tls_creator


def connect_error(cause: BaseException) -> Failure:
    error = SMTPConnectError(-1, "Unable to connect to SMTP server: " + str(cause))
    error.__cause__ = cause
    return Failure(error)


class DescribeTests(SynchronousTestCase):
    def test_permanent_refusals_drop(self) -> None:
        outcome = describe(
            Failure(SMTPDeliveryError(550, b"5.1.1 no such user", log=b"AUTH PLAIN c2VjcmV0"))
        )
        self.assertEqual(
            (outcome.verdict, outcome.detail), (Verdict.DROP, "SMTP 550: 5.1.1 no such user")
        )
        declined = describe(Failure(AUTHDeclinedError(535, b"bad credentials")))
        self.assertEqual(declined.verdict, Verdict.DROP)

    def test_temporary_refusals_retry(self) -> None:
        outcome = describe(Failure(SMTPDeliveryError(451, b"try later", log=b"transcript")))
        self.assertEqual((outcome.verdict, outcome.detail), (Verdict.RETRY, "SMTP 451: try later"))

    def test_connection_failures_retry(self) -> None:
        refused = describe(connect_error(ConnectionRefusedError("Connection refused")))
        self.assertEqual(refused.verdict, Verdict.RETRY)
        self.assertIn("Connection refused", refused.detail)
        tls = describe(
            connect_error(SSL.Error([("SSL routines", "", "certificate verify failed")]))
        )
        self.assertEqual(tls.detail, "cannot connect: TLS: certificate verify failed")


class PasswordTests(SynchronousTestCase):
    def test_every_form_of_the_password_is_scrubbed(self) -> None:
        scrub = Scrubber(password_secrets("pi", "hunter22"))
        plain = base64.b64encode(b"\0pi\0hunter22").decode()
        self.assertEqual(scrub(f"pw hunter22, AUTH PLAIN {plain}"), "pw ***, AUTH PLAIN ***")
        self.assertEqual(password_secrets("pi", None), ())


class CAFileTests(SynchronousTestCase):
    def test_unusable_cafile_stops_start_up(self) -> None:
        with self.assertRaises(StartupError) as missing:
            tls_creator(SMTPSettings(host="h", sender="a@b.c", cafile="/nonexistent/ca.pem"))
        self.assertEqual(
            str(missing.exception),
            "--config: [smtp] cafile: cannot read /nonexistent/ca.pem: No such file or directory",
        )
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("not a certificate\n")
        with self.assertRaises(StartupError) as garbage:
            tls_creator(SMTPSettings(host="h", sender="a@b.c", cafile=path))
        self.assertIn("no PEM certificate in it", str(garbage.exception))
        self.assertIsNone(tls_creator(SMTPSettings(host="h", sender="a@b.c", tls="none")))
