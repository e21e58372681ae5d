"""The epoll reactor, sending what a pass wrote before it next waits, not a pass later.

A transport's C{write} only buffers the data and asks the reactor to watch
the socket for writability (C{addWriter}): Twisted's epoll reactor makes an
C{epoll_ctl} system call for it, waits in C{epoll_wait}, which reports the
socket writable at once, calls the transport's C{doWrite} (the C{send}),
and, the buffer empty, makes another C{epoll_ctl} to stop watching.  For a
small answer (an HTTP response, a WebSocket echo, each of a thousand
broadcast frames) that is three system calls and a reactor pass more than
the C{send} itself, on every message.

L{EagerWriteReactor} keeps the transports that asked to write since its last
wait, in order, instead, and lets each of them write (C{doWrite}, as if the
socket had been reported writable) just before it waits again.  Only a
transport that could not send everything (a full socket buffer, a slow
client) is then handed to epoll, as before.  Nothing writes behind a
transport's back: each transport, TLS included, still sends from its own
C{doWrite}, when its own buffer says so.  A write made in a reactor pass
goes out in the same pass, as with Tornado's C{IOStream}, and the broadcast
of one frame to 1000 clients costs 1000 C{send}s instead of 1000 C{send}s
and 2000 C{epoll_ctl}s.

It also serves a pass's events in one legacy log context instead of one
each.  Twisted wraps every read or write it dispatches in
C{log.callWithLogger}: the selectable's C{logPrefix} becomes the C{system}
of the legacy log messages and errors it causes, through a context pushed
on a thread-local stack and popped again, a new dict each time.  At a small
request's two events (read the request, send the answer) that was a sixth of
the daemon's CPU under load.  Here a pass pushes one context and sets its
C{system} before each event: the same messages get the same C{system}.

The C{pistatsd} command installs it (L{pistatsd.twistd_command}); twistd users can
ask for it with C{twistd --reactor=pistatsd-epoll pistatsd}.
"""

from __future__ import annotations

import errno

from twisted.internet.epollreactor import EPollReactor
from twisted.internet.error import ReactorAlreadyInstalledError
from twisted.internet.interfaces import IReadDescriptor, IWriteDescriptor
from twisted.logger import Logger
from twisted.python import context, log

_log = Logger()


class EagerWriteReactor(EPollReactor):
    """Twisted's epoll reactor, with writes sent before the next wait (see the module)."""

    def __init__(self) -> None:
        #: Writers that asked to write since the last wait, in order (a dict as an ordered set).
        self._eager: dict[IWriteDescriptor, None] = {}
        #: The writers L{send_eager} is going through, until it reaches each.
        self._sending: dict[IWriteDescriptor, None] = {}
        #: The writer whose C{doWrite} is running; cleared when it stops writing.
        self._flushing: IWriteDescriptor | None = None
        #: The legacy log context of the pass being run: its C{system} names the selectable served.
        self._system: dict[str, str] = {}
        super().__init__()

    def addWriter(self, writer: IWriteDescriptor) -> None:
        if writer is self._flushing or writer in self._eager or writer in self._sending:
            return
        if writer.fileno() in self._writes:  # already watched by epoll: it writes when it can
            return
        self._eager[writer] = None

    def removeWriter(self, writer: IWriteDescriptor) -> None:
        if writer is self._flushing:
            self._flushing = None
        elif writer in self._eager:
            del self._eager[writer]
        elif writer in self._sending:
            del self._sending[writer]
        else:
            super().removeWriter(writer)

    def _waiting(self) -> list[IWriteDescriptor]:
        """Writers that asked to write and that epoll does not watch."""
        return [*self._sending, *self._eager]

    def getWriters(self) -> list[IWriteDescriptor]:
        writers: list[IWriteDescriptor] = super().getWriters()
        return writers + [writer for writer in self._waiting() if writer not in writers]

    def removeAll(self) -> list[IReadDescriptor | IWriteDescriptor]:
        waiting = self._waiting()
        self._eager.clear()
        self._sending.clear()
        removed: list[IReadDescriptor | IWriteDescriptor] = super().removeAll()
        return removed + [writer for writer in waiting if writer not in removed]

    def send_eager(self) -> None:
        """Let each writer that asked since the last wait write now; watch those left with data.

        A writer's C{doWrite} may make other writers (or itself, once it has
        stopped) ask again: they wait for the next call, which comes before
        the reactor waits.  One that stops writing before its turn (its
        connection closed by another's) is skipped.
        """
        sending = self._sending = self._eager
        self._eager = {}
        serve = self._serve
        writable = self._POLL_OUT
        for writer in list(sending):
            if writer not in sending:
                continue
            del sending[writer]
            fd = writer.fileno()
            if fd == -1:
                continue
            self._flushing = writer
            serve(writer, fd, writable)
            if self._flushing is writer:  # still has data: epoll says when it can go on
                self._flushing = None
                EPollReactor.addWriter(self, writer)

    def _serve(self, selectable: IReadDescriptor | IWriteDescriptor, fd: int, event: int) -> None:
        """C{log.callWithLogger(selectable, self._doReadOrWrite, ...)}, in the pass's context."""
        try:
            prefix = selectable.logPrefix()
        except KeyboardInterrupt:
            raise
        except BaseException:
            prefix = "(buggy logPrefix method)"
            log.err(system=prefix)
        self._system["system"] = prefix
        try:
            self._doReadOrWrite(selectable, fd, event)
        except KeyboardInterrupt:
            raise
        except BaseException:
            log.err(system=prefix)

    def doPoll(self, timeout: float | None) -> None:
        """Send what is waiting, wait for events and serve them, send what they wrote.

        Twisted's C{EPollReactor.doPoll}, in one log context for the pass
        (see the module) and with the eager writes around the wait.
        """
        # What Twisted's callWithContext merges each event's system into.
        self._system = system = dict(context.get(log.ILogContext) or {})
        system["system"] = "-"
        contexts = _contexts()
        contexts.append({log.ILogContext: system})
        try:
            self._pass(timeout)
        finally:
            contexts.pop()

    doIteration = doPoll

    def _pass(self, timeout: float | None) -> None:
        if self._eager:
            self.send_eager()
            if self._eager:
                timeout = 0
        try:
            # As many events as there are selectables, as Twisted's own asks for.
            events = self._poller.poll(-1 if timeout is None else timeout, len(self._selectables))
        except OSError as err:
            if err.errno != errno.EINTR:
                raise
            events = []
        selectables = self._selectables
        serve = self._serve
        for fd, event in events:
            selectable = selectables.get(fd)
            if selectable is not None:
                serve(selectable, fd, event)
        if self._eager:
            self.send_eager()


def _contexts() -> list[dict[object, object]]:
    """This thread's context stack in Twisted's tracker (C{ContextTracker.contexts})."""
    tracker = context.theContextTracker
    if isinstance(tracker, context.ThreadedContextTracker):
        tracker = tracker.currentContext()
    contexts: list[dict[object, object]] = tracker.contexts
    return contexts


def install() -> None:
    """Install L{EagerWriteReactor} as Twisted's global reactor (twistd's C{--reactor} too)."""
    from twisted.internet.main import installReactor

    installReactor(EagerWriteReactor())


def install_if_none() -> None:
    """Install L{EagerWriteReactor} unless a reactor already is: say so then, and go on.

    The daemon runs on any reactor; only its writes are sent a pass later.
    """
    try:
        install()
    except ReactorAlreadyInstalledError:
        from twisted.internet import reactor

        _log.warn(
            "a reactor was installed before the options were read ({reactor}): "
            "writes are sent in the reactor's next pass",
            reactor=type(reactor).__name__,
        )
