"""Email notifications through a real SMTP server (aiosmtpd) on 127.0.0.1.

The server runs in its own thread with its own asyncio loop; the notifier
runs on the real reactor, built by C{notify_parts} as the daemon builds it.
Plain SMTP, STARTTLS against a test CA (with AUTH), implicit TLS, and a
relay whose certificate comes from another CA (refused: it is checked).
"""

from __future__ import annotations

import email
import email.policy
import os
import socket
import ssl
import tempfile
import threading
from collections.abc import Generator, Iterator
from typing import Any

import pytest
import pytest_twisted
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import LogEvent, globalLogPublisher

from pistatsd.alerts.events import AlertChange
from pistatsd.config import Config
from pistatsd.notify.wiring import NotifyParts, notify_parts
from tests.certificates import cert_pem, key_pem, make_ca, make_leaf, write
from tests.influxd import rendered
from tests.notify_support import FIRING, eventually, free_port

PASSWORD = "pw-smtp-integration"

RESOLVED = AlertChange(
    name=FIRING.name,
    series=FIRING.series,
    state="ok",
    previous="firing",
    time=FIRING.time + 120,
    value=80.0,
    severity=FIRING.severity,
)


class Inbox:
    """aiosmtpd's handler: keeps every message it accepts (from the server's thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.messages.append(
                (str(envelope.mail_from), list(envelope.rcpt_tos), bytes(envelope.content or b""))
            )
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        with self.lock:
            self.logins.append((data.login, data.password))
        return AuthResult(success=data.login == b"pi" and data.password == PASSWORD.encode())

    def count(self) -> int:
        with self.lock:
            return len(self.messages)


class Relay:
    """One aiosmtpd server on 127.0.0.1, and the files a notifier needs to trust it."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        ca_key, ca_cert = make_ca()
        leaf_key, leaf_cert = make_leaf(ca_key, ca_cert)
        self.cafile = write(os.path.join(directory, "ca.pem"), cert_pem(ca_cert))
        _, other_ca = make_ca()
        self.other_cafile = write(os.path.join(directory, "other-ca.pem"), cert_pem(other_ca))
        self.certfile = write(os.path.join(directory, "cert.pem"), cert_pem(leaf_cert))
        self.keyfile = write(os.path.join(directory, "key.pem"), key_pem(leaf_key))
        self.inbox = Inbox()
        self.controller: Controller | None = None
        self.port = 0
        self.password_file = write(os.path.join(directory, "password"), PASSWORD.encode() + b"\n")

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certfile, self.keyfile)
        return context

    def start(self, mode: str) -> int:
        self.port = free_port()
        options: dict[str, Any] = {}
        if mode == "starttls":
            options = {
                "tls_context": self.server_context(),
                "require_starttls": True,
                "authenticator": self.inbox.authenticate,
                "auth_required": True,
            }
        elif mode == "tls":
            options = {"ssl_context": self.server_context()}
        self.controller = Controller(
            self.inbox, hostname="127.0.0.1", port=self.port, ready_timeout=10, **options
        )
        self.controller.start()
        return self.port

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()


@pytest.fixture
def relay() -> Iterator[Relay]:
    with tempfile.TemporaryDirectory() as directory:
        made = Relay(directory)
        yield made
        made.stop()


@pytest.fixture
def logged() -> Iterator[list[LogEvent]]:
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def mail_parts(relay: Relay, smtp: dict[str, object]) -> NotifyParts:
    parts = notify_parts(
        Config(
            extra={
                "notify": {"mail": {"email": ["me@example.org", "you@example.org"]}},
                "smtp": {"host": "127.0.0.1", "port": relay.port, "from": "pi@example.org", **smtp},
            }
        ),
        reactor,
    )
    for service in parts.services:
        service.startService()
    return parts


def health(parts: NotifyParts) -> dict[str, Any]:
    notifiers = parts.health()["notifiers"]
    assert isinstance(notifiers, dict)
    return notifiers["mail"]  # type: ignore[no-any-return]


def stop(parts: NotifyParts) -> Deferred[object]:
    return gatherResults([s.stopService() for s in parts.services])


@pytest_twisted.inlineCallbacks
def test_plain_smtp(relay: Relay) -> Generator[Deferred[object], object, None]:
    relay.start("none")
    parts = mail_parts(relay, {"tls": "none"})
    try:
        parts.listener(FIRING)
        parts.listener(RESOLVED)
        yield eventually(lambda: relay.inbox.count() == 2, 15, "two emails")
    finally:
        yield stop(parts)
    (sender, recipients, raw), (_, _, resolved_raw) = relay.inbox.messages
    assert sender == "pi@example.org"
    assert recipients == ["me@example.org", "you@example.org"]
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    host = socket.gethostname()
    assert mail["Subject"] == f"[critical] filesystem-full:/boot firing on {host}"
    assert mail["To"] == "me@example.org, you@example.org"
    assert mail["Date"] is not None and mail["Message-ID"] is not None
    assert "filesystem-full:/boot is firing: filesystems./boot.percent = 93.1" in (
        mail.get_content()
    )
    resolved = email.message_from_bytes(resolved_raw, policy=email.policy.default)
    assert resolved["Subject"] == f"[critical] filesystem-full:/boot resolved on {host}"
    assert health(parts)["sent"] == 2


@pytest_twisted.inlineCallbacks
def test_starttls_with_a_test_ca_and_auth(
    relay: Relay, logged: list[LogEvent]
) -> Generator[Deferred[object], object, None]:
    relay.start("starttls")
    parts = mail_parts(
        relay, {"cafile": relay.cafile, "user": "pi", "password-file": relay.password_file}
    )
    try:
        parts.listener(FIRING)
        yield eventually(lambda: relay.inbox.count() == 1, 15, "the email")
        said = yield parts.send_test()
    finally:
        yield stop(parts)
    assert said == {"mail": "sent"}
    assert relay.inbox.logins[0] == (b"pi", PASSWORD.encode())
    assert relay.inbox.count() == 2
    assert PASSWORD not in rendered(logged)


@pytest_twisted.inlineCallbacks
def test_implicit_tls(relay: Relay) -> Generator[Deferred[object], object, None]:
    relay.start("tls")
    parts = mail_parts(relay, {"tls": "tls", "cafile": relay.cafile})
    try:
        said = yield parts.send_test()
    finally:
        yield stop(parts)
    assert said == {"mail": "sent"}
    assert relay.inbox.count() == 1


@pytest_twisted.inlineCallbacks
def test_a_certificate_from_another_ca_is_refused(
    relay: Relay, logged: list[LogEvent]
) -> Generator[Deferred[object], object, None]:
    relay.start("starttls")
    parts = mail_parts(
        relay, {"cafile": relay.other_cafile, "user": "pi", "password-file": relay.password_file}
    )
    try:
        parts.listener(FIRING)
        yield eventually(lambda: health(parts)["failed"] >= 1, 15, "a failed attempt")
        state = health(parts)
        said = yield parts.send_test()
    finally:
        yield stop(parts)
    assert relay.inbox.count() == 0
    assert relay.inbox.logins == [], "no password was sent to an unverified server"
    assert state["retrying"] is True
    assert state["last_error"] == "cannot connect: TLS: certificate verify failed"
    assert said["mail"] != "sent"
    text = rendered(logged)
    assert "cannot deliver" in text
    assert PASSWORD not in text
