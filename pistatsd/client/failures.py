"""Expected failures, each worded as the one line the user sees.

A command-line client fails in a handful of well-known ways (nothing listens,
the name does not resolve, the certificate is not trusted, the server says no,
it takes too long). Those deserve a sentence, not a traceback; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

from OpenSSL import SSL
from twisted.internet import defer, error
from twisted.python.failure import Failure
from twisted.web.client import RequestGenerationFailed, RequestTransmissionFailed, ResponseFailed

try:
    from service_identity import VerificationError
except ImportError:  # pragma: no cover - service-identity is a dependency
    VerificationError = ()  # type: ignore[assignment,misc]


class ClientError(Exception):
    """A failure already explained in words: printed on one line, exit status 1."""


class OutputClosed(Exception):
    """Whoever read our stdout has gone (C{| head -3}): stop without a word.

    C{watch} treats it like Ctrl-C (clean close, exit 0); the other commands
    exit 1 quietly, as a program killed by SIGPIPE would fail.
    """


_WRAPPERS = (ResponseFailed, RequestTransmissionFailed, RequestGenerationFailed)

_CA_HINT = " (use --cafile FILE to trust a private CA or self-signed certificate)"


def _root_cause(exception: BaseException) -> BaseException:
    """Look through the wrappers of C{twisted.web.client} (ResponseFailed and friends)."""
    while isinstance(exception, _WRAPPERS) and exception.reasons:
        reason = exception.reasons[0]
        inner = reason.value if isinstance(reason, Failure) else reason
        if inner is None:  # a Failure always holds its exception; this is for the type
            break
        exception = inner
    return exception


def _tls_reason(exception: SSL.Error) -> str:
    """OpenSSL's reason strings (C{certificate verify failed}, ...) without the library noise."""
    details = exception.args[0] if exception.args else None
    reasons = [
        str(entry[-1])
        for entry in (details if isinstance(details, list) else [])
        if isinstance(entry, tuple) and entry
    ]
    return ", ".join(reasons) or str(exception) or "handshake failed"


def _connect_reason(exception: error.ConnectError) -> str:
    if isinstance(exception, error.ConnectionRefusedError):
        return "connection refused"
    if isinstance(exception, error.NoRouteError):
        return "no route to host"
    if isinstance(exception, error.UnknownHostError | error.ServiceNameUnknownError):
        return "host name not found"
    os_error = exception.osError
    if isinstance(os_error, str) and os_error:
        return os_error.strip().rstrip(".")
    return str(exception).strip().rstrip(".") or type(exception).__name__


def describe(exception: BaseException, target: str, timeout: float) -> str | None:
    """The user-facing line for an expected failure talking to C{target}; None if unexpected.

    C{timeout} is quoted in time-out messages so the user knows which knob to turn.
    """
    exception = _root_cause(exception)
    if isinstance(exception, ClientError):
        return str(exception)
    if isinstance(exception, defer.TimeoutError | error.TimeoutError | error.TCPTimedOutError):
        return f"timed out after {timeout:g} s waiting for {target} (see --timeout)"
    if isinstance(exception, error.DNSLookupError):
        return f"cannot connect to {target}: host name not found"
    if isinstance(exception, error.ConnectError):
        return f"cannot connect to {target}: {_connect_reason(exception)}"
    if isinstance(exception, SSL.Error):
        reason = _tls_reason(exception)
        hint = _CA_HINT if "verify failed" in reason else ""
        return f"TLS handshake with {target} failed: {reason}{hint}"
    if isinstance(exception, VerificationError):
        return f"TLS handshake with {target} failed: the certificate is not valid for this host"
    if isinstance(exception, error.ConnectionClosed):
        return f"connection to {target} closed before the answer arrived"
    return None
