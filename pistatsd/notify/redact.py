"""What of a notifier's target may be shown: in logs, C{/health} and error texts.

An ntfy topic is a shared secret (anyone who knows it can read and post
to it), webhook URLs often carry a key in their path or query, and URLs may
hold C{user:password@}.  So a URL is shown as its scheme, host and port
only, with C{/***} standing for any path and query: enough to tell which
server is failing, nothing that lets anyone post.  Email addresses are
shown as they are (they are not secrets, and the person reading the log
needs to know which mailbox).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

#: At least this long to be scrubbed from text: shorter "secrets" would turn
#: every "a" of a message into "***".
MIN_SECRET = 3
#: Path segments at least this long are secrets of their own (C{hooks} is not).
MIN_PIECE = 6


def redact_url(url: str) -> str:
    """C{url} without userinfo, path or query (C{https://ntfy.sh/***})."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None else f"{host}:{port}"
    hidden = parts.path not in ("", "/") or parts.query or parts.username or parts.password
    return f"{parts.scheme}://{netloc}/{'***' if hidden else ''}"


def url_secrets(url: str) -> tuple[str, ...]:
    """The parts of C{url} that must not appear in any text: userinfo, path, query."""
    parts = urlsplit(url)
    path = parts.path.strip("/")
    # Each long path segment and query value on its own too: an error text may
    # quote one of them without the rest.
    pieces = [p for p in path.split("/") if len(p) >= MIN_PIECE]
    pieces += [v for pair in parts.query.split("&") for v in pair.split("=")[1:] if v]
    candidates = [parts.username, parts.password, path, parts.query, *pieces]
    if parts.username is not None:
        candidates.append(basic_credentials(parts.username, parts.password or ""))
    return tuple(s for s in candidates if s)


def basic_credentials(user: str, password: str) -> str:
    """The base64 of HTTP basic authentication (a secret as much as the password)."""
    return base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")


def password_secrets(user: str | None, password: str | None) -> tuple[str, ...]:
    """A password in clear and as SMTP's AUTH PLAIN and LOGIN carry it (base64)."""
    if not password:
        return ()
    name = user or ""
    forms = (password, f"\0{name}\0{password}", f"{name}\0{name}\0{password}")
    encoded = (base64.b64encode(form.encode("utf-8")).decode("ascii") for form in forms)
    return (password, *encoded)


class Scrubber:
    """Replaces every secret of one notifier by C{***} in a text about it."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        unique = {s for s in secrets if s and len(s) >= MIN_SECRET}
        self._secrets = sorted(unique, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """C{text} with every secret replaced."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text
