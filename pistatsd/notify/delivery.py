"""Getting messages to one notifier: a bounded queue, one attempt at a time, retries.

The same for the three kinds: a L{Sender} makes one attempt and says what
it means (L{Outcome}); a L{Delivery} decides what happens next.  A message
that cannot be delivered now (a 5xx, 408 or 429, a timeout, a refused
connection) is tried again with exponential backoff and jitter for up to
L{RETRY_FOR} seconds and then dropped; one the server refuses for good (a
wrong URL, token or address) is dropped at once: sending it again cannot
help.  Messages wait behind the one being tried, in order, at most
L{QUEUE_SIZE} of them; past that the oldest is dropped.  Every drop is
counted; problems are logged once per episode.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from typing import Protocol

from attrs import frozen
from twisted.internet.defer import CancelledError, Deferred, TimeoutError, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from pistatsd.episodes import Episode
from pistatsd.influx.backoff import Backoff
from pistatsd.notify.messages import Message

_log = Logger()

QUEUE_SIZE = 100
#: Seconds a message is retried before it is dropped.
RETRY_FOR = 3600.0
#: The first retry waits this long (then 2x, 4x, ... with jitter), at most L{BACKOFF_MAX}.
BACKOFF_INITIAL = 5.0
BACKOFF_MAX = 600.0
#: A test message (C{POST /api/alerts/test}) waits at most this long for its answer.
TEST_DEADLINE = 20.0
#: An error text kept for C{/health} is cut to this length.
ERROR_LIMIT = 200


class Verdict(enum.Enum):
    """What one attempt means."""

    SENT = "sent"
    RETRY = "retry"
    """Worth trying again later: the server is down, slow or busy."""
    DROP = "drop"
    """The server refused it for good: trying again cannot help."""


@frozen
class Outcome:
    """One attempt's meaning, with a short text free of secrets."""

    verdict: Verdict
    detail: str = ""
    retry_after: float | None = None


class Sender(Protocol):
    """One kind of notifier's way to make one attempt.

    @ivar kind: C{"ntfy"}, C{"webhook"} or C{"email"}.
    @ivar target: where it sends, redacted (safe for logs and C{/health}).
    """

    kind: str
    target: str

    def send(self, message: Message) -> Deferred[Outcome]:
        """One attempt; never fails; cancelling it aborts the attempt."""

    def close(self) -> Deferred[None]:
        """Release connections (at shutdown)."""


def _limited(text: str) -> str:
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 1] + "…"


class Delivery:
    """The queue and the retries of one notifier.

    @param deadline: seconds one attempt may take in all (connecting,
        sending, reading the answer) before it is given up and retried; the
        senders have their own, shorter timeouts, this is the backstop.
    @param scrub: applied to every text about this notifier (log, C{/health}).
    """

    def __init__(
        self,
        name: str,
        sender: Sender,
        clock: IReactorTime,
        *,
        deadline: float,
        scrub: Callable[[str], str],
        backoff: Backoff | None = None,
        queue_size: int = QUEUE_SIZE,
        retry_for: float = RETRY_FOR,
    ) -> None:
        self.name = name
        self._sender = sender
        self._clock = clock
        self._deadline = deadline
        self._scrub = scrub
        self._backoff = backoff or Backoff(BACKOFF_INITIAL, BACKOFF_MAX)
        self._queue: deque[Message] = deque()
        self._queue_size = queue_size
        self._retry_for = retry_for
        self._current: Message | None = None
        self._first_try = 0.0
        self._attempt: Deferred[Outcome] | None = None
        self._timer: IDelayedCall | None = None
        #: Test messages in flight (cancelled at stop).
        self._tests: set[Deferred[Outcome]] = set()
        self._running = False
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.last_error: str | None = None
        fields = "notifier {notifier} ({kind} {target})"
        self._failing = Episode(
            _log,
            fields + ": cannot deliver: {error}; {action}",
            fields + ": delivering again after {failures} failed attempts",
            count_field="failures",
        )
        self._full = Episode(
            _log,
            fields + ": {limit} messages waiting; dropping the oldest",
            fields + ": queue has room again; {dropped} messages were dropped",
            count_field="dropped",
        )

    @property
    def kind(self) -> str:
        """The sender's kind (for C{/health} and the log)."""
        return self._sender.kind

    @property
    def target(self) -> str:
        """Where the sender sends, redacted."""
        return self._sender.target

    @property
    def queued(self) -> int:
        """Messages not delivered yet, the one being tried included."""
        return len(self._queue) + (self._current is not None)

    @property
    def retrying(self) -> bool:
        """Whether a message is waiting for its next try."""
        return self._timer is not None

    def put(self, message: Message) -> None:
        """Queue C{message}; the oldest waiting one is dropped when the queue is full."""
        if len(self._queue) >= self._queue_size:
            self._queue.popleft()
            self.dropped += 1
            self._full.happened(limit=self._queue_size, **self._fields())
        self._queue.append(message)
        self._next()

    def start(self) -> None:
        """Begin delivering (messages queued before are kept)."""
        self._running = True
        self._next()

    def stop(self) -> Deferred[None]:
        """Stop trying: cancel the timer and the attempt in progress, close connections.

        What is still queued is lost with the process (notifications are about now).
        """
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._attempt is not None:
            self._attempt.cancel()
        for test in list(self._tests):
            test.cancel()
        return self._sender.close()

    def send_once(self, message: Message) -> Deferred[str]:
        """One attempt outside the queue (a test message): C{"sent"} or the error text."""

        def said(outcome: Outcome) -> str:
            if outcome.verdict is Verdict.SENT:
                return "sent"
            return _limited(self._scrub(outcome.detail)) or "failed"

        def stopped(failure: Failure) -> str:
            failure.trap(CancelledError)
            return "stopped"

        def done(result: str) -> str:
            self._tests.discard(attempt)
            return result

        deadline = min(self._deadline, TEST_DEADLINE)
        attempt = self._bounded(self._send(message), deadline)
        self._tests.add(attempt)
        return attempt.addCallbacks(said, stopped).addBoth(done)

    def state(self) -> dict[str, object]:
        """This notifier for C{/health}: no secret in it."""
        return {
            "kind": self._sender.kind,
            "target": self._sender.target,
            "queued": self.queued,
            "sent": self.sent,
            "failed": self.failed,
            "dropped": self.dropped,
            "last_error": self.last_error,
            "retrying": self.retrying,
        }

    def _fields(self) -> dict[str, object]:
        return {"notifier": self.name, "kind": self._sender.kind, "target": self._sender.target}

    def _bounded(
        self, attempt: Deferred[Outcome], deadline: float | None = None
    ) -> Deferred[Outcome]:
        """C{attempt}, given up after C{deadline} seconds (the delivery's by default): a retry."""
        deadline = self._deadline if deadline is None else deadline

        def late(failure: Failure) -> Outcome:
            failure.trap(TimeoutError)
            return Outcome(Verdict.RETRY, f"no answer within {deadline:g} s")

        return attempt.addTimeout(deadline, self._clock).addErrback(late)

    def _send(self, message: Message) -> Deferred[Outcome]:
        """The sender's attempt; a sender that raises (a bug) drops the message, logged."""
        try:
            return self._sender.send(message)
        except Exception:
            _log.failure("notifier {notifier}: cannot send a message", notifier=self.name)
            return succeed(Outcome(Verdict.DROP, "cannot build the message"))

    def _next(self) -> None:
        if not self._running or self._current is not None or not self._queue:
            return
        self._current = self._queue.popleft()
        self._first_try = self._clock.seconds()
        # Half empty before the episode ends: a queue that stays about full
        # logs one episode, not one per message.
        if self._full.active and len(self._queue) <= self._queue_size // 2:
            self._full.ended(**self._fields())
        self._try()

    def _try(self) -> None:
        self._timer = None
        assert self._current is not None
        attempt = self._attempt = self._bounded(self._send(self._current))
        attempt.addCallbacks(self._tried, self._cancelled)

    def _cancelled(self, failure: Failure) -> None:
        # Only stop() cancels an attempt; anything else is a bug in a sender.
        self._attempt = None
        if not failure.check(CancelledError):
            _log.failure("notifier {notifier}: attempt failed", failure, notifier=self.name)

    def _tried(self, outcome: Outcome) -> None:
        self._attempt = None
        if not self._running:
            return
        if outcome.verdict is Verdict.SENT:
            self.sent += 1
            self._backoff.reset()
            self._failing.ended(**self._fields())
            self._done()
            return
        self.failed += 1
        error = self.last_error = _limited(self._scrub(outcome.detail)) or "failed"
        if outcome.verdict is Verdict.DROP:
            self._backoff.reset()
            self._give_up(error, "dropped (the server refused it)")
            return
        self._backoff.failed()
        delay = self._backoff.delay(outcome.retry_after)
        if self._clock.seconds() + delay - self._first_try > self._retry_for:
            self._give_up(error, f"dropped after retrying for {self._retry_for:g} s")
            return
        self._failing.happened(error=error, action="will retry", **self._fields())
        self._timer = self._clock.callLater(delay, self._try)

    def _give_up(self, error: str, action: str) -> None:
        self.dropped += 1
        self._failing.happened(error=error, action=action, **self._fields())
        self._done()

    def _done(self) -> None:
        self._current = None
        self._next()
