"""What a notification says, and how each kind of notifier writes it down.

A L{Message} is decided once per alert change (fired, resolved, still
firing, or a test) and rendered three ways: a webhook's JSON document, an
ntfy request (the text as body, C{Title}/C{Priority}/C{Tags} headers) and
an email (subject and plain-text body).  C{since} is written as ISO 8601 in
UTC (C{2026-12-01T12:01:00Z}): readable by people and by every JSON
consumer, without guessing a time zone.
"""

from __future__ import annotations

import email.header
import email.utils
import json
import math
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Literal

from attrs import frozen

from pistatsd import __version__
from pistatsd.alerts.events import AlertChange, Severity
from pistatsd.printable import utf8_safe
from pistatsd.sensors.model import CONTROL_CHARACTERS

Event = Literal["firing", "resolved", "reminder", "test"]


@frozen
class Message:
    """One notification, before it is rendered for a kind of notifier.

    @ivar event: why it is sent (an alert fired, resolved, still fires, or a test).
    @ivar since: wall-clock time (UNIX seconds) the alert entered its state.
    """

    event: Event
    alert: str
    series: str
    severity: Severity
    value: float | None
    since: float
    host: str

    @property
    def state(self) -> Literal["firing", "ok"]:
        """The alert's state as the webhook says it (a resolved alert is C{ok})."""
        return "ok" if self.event == "resolved" else "firing"

    @property
    def title(self) -> str:
        """A short line: the ntfy title and the email subject."""
        if self.event == "test":
            return f"pistatsd on {self.host}: test notification"
        verb = {"firing": "firing", "resolved": "resolved", "reminder": "still firing"}
        return f"[{self.severity}] {self.alert} {verb[self.event]} on {self.host}"

    @property
    def text(self) -> str:
        """The human sentence (C{filesystem-full:/boot is firing: ... (since 12:01 UTC)})."""
        if self.event == "test":
            return f"Test notification from pistatsd on {self.host}: notifications reach you."
        value = "no value yet" if self.value is None else f"{format_value(self.value)}"
        state = {"firing": "is firing", "resolved": "resolved", "reminder": "is still firing"}
        return (
            f"{self.alert} {state[self.event]}: {self.series} = {value}"
            f" (since {clock_time(self.since, with_date=self.event == 'reminder')})"
        )


def printable(text: str) -> str:
    """C{text} safe for a header, a subject or a log line: UTF-8 encodable, one line.

    Alert names carry what the machine named (a mount point may hold a
    newline or undecodable bytes); a header or subject with a line break is
    refused outright, and a message that cannot be built is never sent.
    """
    return CONTROL_CHARACTERS.sub("?", utf8_safe(text))


def message_for(change: AlertChange, host: str, since: float | None = None) -> Message | None:
    """The message a change implies, or None (pending, or back to ok without firing).

    @param since: for a reminder, when the alert started firing.
    """
    if change.state == "firing" and change.previous != "firing":
        event: Event = "firing"
    elif change.state == "ok" and change.previous == "firing":
        event = "resolved"
    else:
        return None
    return Message(
        event=event,
        alert=printable(change.name),
        series=printable(change.series),
        severity=change.severity,
        value=change.value,
        since=change.time if since is None else since,
        host=printable(host),
    )


def reminder_of(fired: Message) -> Message:
    """The reminder for an alert that fired with C{fired} and still fires."""
    return Message(
        event="reminder",
        alert=fired.alert,
        series=fired.series,
        severity=fired.severity,
        value=fired.value,
        since=fired.since,
        host=fired.host,
    )


def probe_message(host: str, now: float) -> Message:
    """The message of C{POST /api/alerts/test}."""
    return Message(
        event="test",
        alert="test",
        series="",
        severity="warning",
        value=None,
        since=now,
        host=printable(host),
    )


def format_value(value: float) -> str:
    """A reading as people write it: C{93.1}, C{12}, not C{93.09999999}."""
    if not math.isfinite(value):
        return str(value)
    return f"{value:.6g}" if abs(value) < 1e15 else f"{value:.3e}"


def iso_utc(seconds: float) -> str:
    """ISO 8601 in UTC, to the second (C{2026-12-01T12:01:00Z})."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clock_time(seconds: float, with_date: bool = False) -> str:
    """The time of day in UTC (C{12:01 UTC}); with the date for a reminder, which
    may come days after the alert fired."""
    when = datetime.fromtimestamp(seconds, UTC)
    return when.strftime("%Y-%m-%d %H:%M UTC" if with_date else "%H:%M UTC")


def webhook_body(message: Message) -> bytes:
    """The webhook's JSON document (SPEC's fields, plus C{event})."""
    value = message.value if message.value is None or math.isfinite(message.value) else None
    document = {
        "alert": message.alert,
        "state": message.state,
        "event": message.event,
        "severity": message.severity,
        "series": message.series,
        "value": value,
        "since": iso_utc(message.since),
        "host": message.host,
        "message": message.text,
    }
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


#: ntfy priorities (1 min .. 5 urgent) by severity, for a firing alert.
NTFY_PRIORITY: dict[Severity, int] = {"warning": 4, "critical": 5}
#: A resolved alert: ntfy's "low" (no sound on most phones).
NTFY_RESOLVED_PRIORITY = 2
NTFY_TAGS: dict[Event, tuple[str, ...]] = {
    "firing": ("rotating_light",),
    "reminder": ("rotating_light", "repeat"),
    "resolved": ("white_check_mark",),
    "test": ("test_tube",),
}


def ntfy_headers(
    message: Message, priority: int | None = None, tags: tuple[str, ...] = ()
) -> dict[str, str]:
    """C{Title}, C{Priority} and C{Tags} of an ntfy publish (RFC 2047 for non-ASCII titles).

    @param priority: the notifier's own priority for firing messages.
    @param tags: the notifier's own tags, after the message's.
    """
    if message.event == "resolved":
        level = NTFY_RESOLVED_PRIORITY
    elif message.event == "test":
        level = 3
    else:
        level = priority or NTFY_PRIORITY[message.severity]
    words = [*NTFY_TAGS[message.event]]
    if message.event != "test":
        words.insert(0, message.severity)
    words += [t for t in tags if t not in words]
    return {
        "Title": _header_text(message.title),
        "Priority": str(level),
        "Tags": ",".join(words),
    }


def _header_text(text: str) -> str:
    """C{text} as an HTTP header value: ASCII as it is, else RFC 2047 (ntfy decodes it)."""
    try:
        text.encode("ascii")
    except UnicodeEncodeError:
        return email.header.Header(text, "utf-8").encode()
    return text


def email_message(message: Message, sender: str, recipients: tuple[str, ...], now: float) -> bytes:
    """The whole email (headers and plain-text body) as SMTP sends it."""
    mail = EmailMessage()
    mail["Subject"] = message.title
    mail["From"] = sender
    mail["To"] = ", ".join(recipients)
    mail["Date"] = email.utils.formatdate(now, usegmt=True)
    domain = sender.rpartition("@")[2] or "localhost"
    mail["Message-ID"] = email.utils.make_msgid("pistatsd", domain=domain)
    mail["X-Mailer"] = f"pistatsd/{__version__}"
    body = [message.text, ""]
    if message.event != "test":
        body += [
            f"Alert:    {message.alert}",
            f"Severity: {message.severity}",
            f"Series:   {message.series}",
            f"Since:    {iso_utc(message.since)}",
        ]
    body += [f"Host:     {message.host}", ""]
    mail.set_content("\n".join(body))
    return mail.as_bytes()
