"""The C{[notify.NAME]} and C{[smtp]} tables, validated once at start-up.

Every problem stops the daemon with one line naming the table and the key
(C{--config: [notify.phone] ntfy: must be an http(s) URL}), so a typo is
found when the daemon starts, not months later when the first alert fires.
Secrets (the ntfy token, the SMTP password) are read here from their files
or the environment and never appear in a message.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Literal
from urllib.parse import urlsplit

from attrs import field, frozen

from pistatsd.alerts.events import SEVERITIES, Severity
from pistatsd.errors import StartupError
from pistatsd.secrets import SecretFileError, read_secret
from pistatsd.sensors.model import toml_key

Kind = Literal["ntfy", "webhook", "email"]
TLSMode = Literal["starttls", "tls", "none"]

KINDS: tuple[Kind, ...] = ("ntfy", "webhook", "email")
TLS_MODES: tuple[TLSMode, ...] = ("starttls", "tls", "none")

#: At most this many notifiers: each owns a queue and, for HTTP, a connection pool.
MAX_NOTIFIERS = 16
#: At most this many addresses for one email notifier.
MAX_ADDRESSES = 16
#: Reminders at most this often (a reminder a second would be a flood) and at least
#: once a week (a bigger number is a typo).
MIN_REPEAT = 60.0
MAX_REPEAT = 7 * 24 * 3600.0
DEFAULT_SMTP_TIMEOUT = 30.0
MAX_SMTP_TIMEOUT = 300.0

#: A notifier's name: it appears in Prometheus labels and log lines.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_ADDRESS = re.compile(r"[^@\s<>,;\"()\[\]\\]+@[A-Za-z0-9.-]+")
#: ntfy's priority names, by number (ntfy accepts either).
NTFY_PRIORITIES = {"min": 1, "low": 2, "default": 3, "high": 4, "urgent": 5, "max": 5}
_TAG = re.compile(r"[A-Za-z0-9_+-]{1,64}")

NOTIFIER_KEYS = ("ntfy", "webhook", "email", "min-severity", "repeat", "token-file")
NTFY_KEYS = ("priority", "tags")
SMTP_KEYS = ("host", "port", "tls", "user", "password-file", "from", "cafile", "timeout")

NTFY_TOKEN_ENV = "PISTATSD_NTFY_TOKEN"
SMTP_PASSWORD_ENV = "PISTATSD_SMTP_PASSWORD"


class _Invalid(ValueError):
    """One key of one table is unusable; the message starts with the key."""


@frozen
class NotifierSettings:
    """One C{[notify.NAME]} table.

    @ivar target: the URL (ntfy, webhook) or the addresses (email, comma-separated
        in L{addresses}).
    @ivar token: sent as C{Authorization: Bearer} (ntfy, webhook); never shown.
    @ivar priority: ntfy priority (1..5) of firing messages, instead of the
        severity's own.
    @ivar tags: extra ntfy tags, after the ones the message chooses.
    """

    name: str
    kind: Kind
    target: str
    addresses: tuple[str, ...] = ()
    min_severity: Severity = "warning"
    repeat: float = 0.0
    token: str | None = field(default=None, repr=False)
    priority: int | None = None
    tags: tuple[str, ...] = ()

    def wants(self, severity: Severity) -> bool:
        """Whether an alert of C{severity} is at or above this notifier's C{min-severity}."""
        return SEVERITIES.index(severity) >= SEVERITIES.index(self.min_severity)


@frozen
class SMTPSettings:
    """The C{[smtp]} table: the one relay every email notifier sends through."""

    host: str
    sender: str
    port: int = 587
    tls: TLSMode = "starttls"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    cafile: str | None = None
    timeout: float = DEFAULT_SMTP_TIMEOUT


@frozen
class NotifySettings:
    """Every notifier, and the relay when any of them sends email."""

    notifiers: tuple[NotifierSettings, ...] = ()
    smtp: SMTPSettings | None = None


def _type(value: object) -> str:
    """What a TOML value is, in TOML's words."""
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array"}
    for kind, name in names.items():
        if type(value) is kind:
            return name
    return "table" if isinstance(value, dict) else "date or time"


def _string(key: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"{key}: must be a non-empty string, not {_describe(value)}")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise _Invalid(f"{key}: must not hold control characters")
    return value.strip()


def _describe(value: object) -> str:
    return "an empty string" if value == "" else f"a {_type(value)}"


def _number(key: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Invalid(f"{key}: must be a number of seconds, not {_describe(value)}")
    if not low <= value <= high:
        raise _Invalid(f"{key}: must be between {low:g} and {high:g}")
    return float(value)


def _url(key: str, value: object) -> str:
    text = _string(key, value) if isinstance(value, str) else ""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Invalid(f"{key}: must be an http(s) URL")
    if parts.fragment:
        raise _Invalid(f"{key}: must not have a #fragment")
    return text


def _address(key: str, value: object) -> str:
    text = _string(key, value) if isinstance(value, str) else ""
    if not _ADDRESS.fullmatch(text):
        raise _Invalid(f"{key}: must be an email address (name@example.org)")
    try:
        text.encode("ascii")
    except UnicodeEncodeError:
        raise _Invalid(f"{key}: must be an ASCII email address") from None
    return text


def _addresses(value: object) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise _Invalid("email: needs at least one address")
    if len(values) > MAX_ADDRESSES:
        raise _Invalid(f"email: at most {MAX_ADDRESSES} addresses")
    return tuple(_address("email", v) for v in values)


def _secret(key: str, path: object, env_name: str, environ: Mapping[str, str]) -> str | None:
    """A secret from the file the table names, or the environment; never echoed."""
    try:
        return read_secret(None if path is None else _string(key, path), env_name, environ)
    except SecretFileError as e:
        raise _Invalid(f"{key}: {e}") from None


def _priority(value: object) -> int:
    if isinstance(value, str) and value in NTFY_PRIORITIES:
        return NTFY_PRIORITIES[value]
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5:
        return value
    raise _Invalid("priority: must be 1 to 5 or one of min, low, default, high, urgent")


def _tags(value: object) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if len(values) > 8 or not all(isinstance(v, str) and _TAG.fullmatch(v) for v in values):
        raise _Invalid("tags: must be up to 8 words of letters, digits, '_', '+' or '-'")
    return tuple(str(v) for v in values)


def parse_notifier(name: str, table: object, environ: Mapping[str, str]) -> NotifierSettings:
    """One C{[notify.NAME]} table; L{_Invalid} naming the key."""
    if not NAME_PATTERN.fullmatch(name):
        raise _Invalid("the name must be 1 to 64 letters, digits, '_', '.' or '-'")
    if not isinstance(table, dict):
        raise _Invalid(f"must be a table with ntfy, webhook or email, not {_describe(table)}")
    kinds = [k for k in KINDS if k in table]
    if len(kinds) != 1:
        raise _Invalid("needs exactly one of ntfy = URL, webhook = URL, email = ADDRESS")
    kind = kinds[0]
    allowed = NOTIFIER_KEYS + (NTFY_KEYS if kind == "ntfy" else ())
    unknown = sorted(k for k in table if k not in allowed)
    if unknown:
        raise _Invalid(f"unknown key {unknown[0]!r} for a {kind} notifier")
    severity = table.get("min-severity", "warning")
    if severity not in SEVERITIES:
        raise _Invalid(f"min-severity: must be one of {', '.join(SEVERITIES)}")
    repeat = _number("repeat", table.get("repeat", 0), 0, MAX_REPEAT)
    if 0 < repeat < MIN_REPEAT:
        raise _Invalid(f"repeat: must be 0 (no reminders) or at least {MIN_REPEAT:g} seconds")
    if kind == "email":
        if "token-file" in table:
            raise _Invalid("token-file: only for ntfy and webhook notifiers")
        addresses = _addresses(table["email"])
        target, token = ", ".join(addresses), None
    else:
        addresses = ()
        target = _url(kind, table[kind])
        env_name = NTFY_TOKEN_ENV if kind == "ntfy" else ""
        token = _secret("token-file", table.get("token-file"), env_name, environ)
    return NotifierSettings(
        name=name,
        kind=kind,
        target=target,
        addresses=addresses,
        min_severity=severity,
        repeat=repeat,
        token=token,
        priority=_priority(table["priority"]) if "priority" in table else None,
        tags=_tags(table["tags"]) if "tags" in table else (),
    )


def parse_smtp(table: object, environ: Mapping[str, str]) -> SMTPSettings:
    """The C{[smtp]} table; L{_Invalid} naming the key."""
    if not isinstance(table, dict):
        raise _Invalid(f"must be a table, not {_describe(table)}")
    unknown = sorted(k for k in table if k not in SMTP_KEYS)
    if unknown:
        raise _Invalid(f"unknown key {unknown[0]!r}; expected {', '.join(SMTP_KEYS)}")
    for key in ("host", "from"):
        if key not in table:
            raise _Invalid(f"{key}: is required")
    tls = table.get("tls", "starttls")
    if tls not in TLS_MODES:
        raise _Invalid(f"tls: must be one of {', '.join(TLS_MODES)}")
    port = table.get("port", 465 if tls == "tls" else 587)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise _Invalid("port: must be an integer from 1 to 65535")
    user = _string("user", table["user"]) if "user" in table else None
    password = _secret("password-file", table.get("password-file"), SMTP_PASSWORD_ENV, environ)
    if password is not None and user is None:
        raise _Invalid("user: is required with a password")
    if user is not None and password is None:
        raise _Invalid(f"password-file: is required with a user (or set {SMTP_PASSWORD_ENV})")
    cafile = _string("cafile", table["cafile"]) if "cafile" in table else None
    if cafile is not None and tls == "none":
        raise _Invalid('cafile: has no use with tls = "none"')
    return SMTPSettings(
        host=_string("host", table["host"]),
        sender=_address("from", table["from"]),
        port=port,
        tls=tls,
        user=user,
        password=password,
        cafile=cafile,
        timeout=_number("timeout", table.get("timeout", DEFAULT_SMTP_TIMEOUT), 1, MAX_SMTP_TIMEOUT),
    )


def parse_settings(extra: Mapping[str, object], environ: Mapping[str, str]) -> NotifySettings:
    """The notifiers of the TOML file's C{[notify]} and C{[smtp]} tables.

    @param extra: L{pistatsd.config.Config.extra} (the raw TOML tables).
    @raise StartupError: one line naming the table and the key.
    """
    tables = extra.get("notify", {})
    if not isinstance(tables, dict):
        raise StartupError(
            f"--config: [notify] must be a table of [notify.NAME] tables, not {_describe(tables)}"
        )
    if len(tables) > MAX_NOTIFIERS:
        raise StartupError(
            f"--config: [notify] defines {len(tables)} notifiers; at most {MAX_NOTIFIERS}"
        )
    notifiers = []
    for name, table in tables.items():
        try:
            notifiers.append(parse_notifier(name, table, environ))
        except _Invalid as e:
            raise StartupError(f"--config: [notify.{toml_key(name)}] {e}") from None
    smtp = None
    if "smtp" in extra:
        try:
            smtp = parse_smtp(extra["smtp"], environ)
        except _Invalid as e:
            raise StartupError(f"--config: [smtp] {e}") from None
    emails = [n.name for n in notifiers if n.kind == "email"]
    if emails and smtp is None:
        raise StartupError(
            f"--config: [notify.{toml_key(emails[0])}] email: needs an [smtp] table "
            "(host, from) to send through"
        )
    return NotifySettings(notifiers=tuple(notifiers), smtp=smtp)
