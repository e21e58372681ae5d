"""One attempt to send a notification by email, through the C{[smtp]} relay (twisted.mail).

Imported only when an email notifier is configured: C{twisted.mail.smtp}
asks the resolver for the host's full name when it is imported, which is
fine once at start-up and nothing a daemon without email should pay for.

The relay's certificate is verified (against C{cafile}, or the system's
CAs) for C{tls = "starttls"} (STARTTLS required) and C{"tls"} (TLS from
the first byte); C{"none"} sends in clear.  A 5xx answer (a refused
password, sender or recipient) drops the message: it will not fix itself;
4xx answers, timeouts, refused connections and TLS failures are retried.
Error texts never quote the SMTP transcript (it holds the AUTH exchange).
"""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO

from OpenSSL import SSL
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IConnector, IOpenSSLClientConnectionCreator
from twisted.internet.ssl import optionsForClientTLS
from twisted.mail.smtp import ESMTPSenderFactory, SMTPClientError
from twisted.python.failure import Failure

from pistatsd.errors import StartupError
from pistatsd.notify.delivery import Outcome, Verdict
from pistatsd.notify.messages import Message, email_message
from pistatsd.notify.settings import NotifierSettings, SMTPSettings
from pistatsd.pem import load_certificates, trust_root
from pistatsd.reactors import IPistatsdReactor


def tls_creator(smtp: SMTPSettings) -> IOpenSSLClientConnectionCreator | None:
    """How to check the relay's certificate (None for C{tls = "none"}).

    @raise StartupError: the C{cafile} cannot be read or holds no certificate.
    """
    if smtp.tls == "none":
        return None
    trust = None
    if smtp.cafile is not None:
        try:
            with open(smtp.cafile, "rb") as f:
                trust = trust_root(load_certificates(f.read()))
        except OSError as e:
            raise StartupError(
                f"--config: [smtp] cafile: cannot read {smtp.cafile}: {e.strerror}"
            ) from None
        except ValueError as e:
            raise StartupError(f"--config: [smtp] cafile: {smtp.cafile}: {e}") from None
    return optionsForClientTLS(smtp.host, trustRoot=trust)


def describe(failure: Failure) -> Outcome:
    """What a failed SMTP attempt means, in words free of the transcript."""
    error = failure.value
    if error is None:
        return Outcome(Verdict.RETRY, "failed")
    if isinstance(error, SMTPClientError):
        cause = error.__cause__
        if error.code >= 500:
            response = error.resp.decode("utf-8", "replace")
            return Outcome(Verdict.DROP, f"SMTP {error.code}: {' '.join(response.split())}")
        if error.code >= 400:
            response = error.resp.decode("utf-8", "replace")
            return Outcome(Verdict.RETRY, f"SMTP {error.code}: {' '.join(response.split())}")
        if cause is not None:
            return Outcome(Verdict.RETRY, f"cannot connect: {_short(cause)}")
        return Outcome(Verdict.RETRY, error.resp.decode("utf-8", "replace"))
    return Outcome(Verdict.RETRY, _short(error))


def _short(error: BaseException) -> str:
    if isinstance(error, SSL.Error) and error.args and isinstance(error.args[0], list):
        # pyOpenSSL's errors are lists of (library, function, reason) tuples.
        reasons = [str(r[-1]) for r in error.args[0] if isinstance(r, tuple) and r]
        return "TLS: " + ("; ".join(reasons) or "handshake failed")
    name = error.__class__.__name__
    text = " ".join(str(error).split())[:160]
    return f"{name}: {text}" if text else name


class SMTPSender:
    """Email notifications of one notifier: one SMTP session per message."""

    kind: str = "email"

    def __init__(
        self,
        settings: NotifierSettings,
        smtp: SMTPSettings,
        reactor: IPistatsdReactor,
        wall: Callable[[], float],
        scrub: Callable[[str], str],
        creator: IOpenSSLClientConnectionCreator | None,
        helo: str,
    ) -> None:
        self.target: str = f"{', '.join(settings.addresses)} via {smtp.host}:{smtp.port}"
        self._recipients = settings.addresses
        self._smtp = smtp
        self._reactor = reactor
        self._wall = wall
        self._scrub = scrub
        self._creator = creator
        self._helo = helo.encode("idna") if helo else b"localhost"

    def send(self, message: Message) -> Deferred[Outcome]:
        """One SMTP session; never fails; cancelling it closes the connection."""
        smtp = self._smtp
        mail = email_message(message, smtp.sender, self._recipients, self._wall())
        connector: list[IConnector] = []

        def cancel(d: Deferred[object]) -> None:
            factory.sendFinished = True
            if factory.currentProtocol is not None:
                factory.currentProtocol.transport.abortConnection()
            elif connector:
                connector[0].disconnect()

        result: Deferred[object] = Deferred(cancel)
        factory = ESMTPSenderFactory(
            smtp.user.encode("utf-8") if smtp.user else None,
            smtp.password.encode("utf-8") if smtp.password else None,
            smtp.sender,
            list(self._recipients),
            BytesIO(mail),
            result,
            retries=0,
            timeout=smtp.timeout,
            contextFactory=self._creator,
            heloFallback=smtp.user is None and smtp.tls == "none",
            requireAuthentication=smtp.user is not None,
            requireTransportSecurity=smtp.tls != "none",
            hostname=smtp.host if smtp.tls != "none" else None,
        )
        factory.domain = self._helo
        factory.noisy = False
        if smtp.tls == "tls":
            assert self._creator is not None
            connector.append(
                self._reactor.connectSSL(
                    smtp.host,
                    smtp.port,
                    factory,
                    # A connection creator is what TLSMemoryBIOFactory prefers.
                    self._creator,  # type: ignore[arg-type]
                    timeout=smtp.timeout,
                    bindAddress=None,
                )
            )
        else:
            connector.append(
                self._reactor.connectTCP(smtp.host, smtp.port, factory, timeout=smtp.timeout)
            )

        def sent(_: object) -> Outcome:
            return Outcome(Verdict.SENT)

        def failed(failure: Failure) -> Outcome | Failure:
            if failure.check(CancelledError):
                return failure  # stopped, or past the delivery's deadline
            outcome = describe(failure)
            return Outcome(outcome.verdict, self._scrub(outcome.detail))

        return result.addCallbacks(sent, failed)

    def close(self) -> Deferred[None]:
        """Nothing is kept open between messages."""
        return succeed(None)
