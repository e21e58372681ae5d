"""The eager-write reactor: a write goes out before the reactor next waits, with no epoll_ctl.

A real reactor (not installed) and a real socket pair: one end adopted as a
Twisted transport, the other read directly.  The reactor's epoll object is
wrapped to see every C{epoll_ctl} it asks for and every timeout it waits with.
Each test that counts system calls also runs on Twisted's own epoll reactor,
to show what it changes.
"""

from __future__ import annotations

import os
import select
import socket
from collections.abc import Iterator

import pytest
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.interfaces import IPullProducer, IWriteDescriptor
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import LogLevel, capturedLogs
from twisted.python import context, log
from twisted.python.failure import Failure
from zope.interface import implementer

from pistatsd.eager_writes import EagerWriteReactor, install_if_none

BIG = 8 << 20  # far more than a socket pair's buffers hold


class CountingPoller:
    """An epoll object that records what the reactor asks of it."""

    def __init__(self, poller: select.epoll) -> None:
        self._poller = poller
        self.controls: list[tuple[str, int, int]] = []
        self.timeouts: list[float] = []

    def register(self, fd: int, flags: int) -> None:
        self.controls.append(("register", fd, flags))
        self._poller.register(fd, flags)

    def modify(self, fd: int, flags: int) -> None:
        self.controls.append(("modify", fd, flags))
        self._poller.modify(fd, flags)

    def unregister(self, fd: int) -> None:
        self.controls.append(("unregister", fd, 0))
        self._poller.unregister(fd)

    def poll(self, timeout: float, maxevents: int) -> list[tuple[int, int]]:
        self.timeouts.append(timeout)
        return self._poller.poll(timeout, maxevents)

    def close(self) -> None:
        self._poller.close()

    def watched_for_writing(self, fd: int) -> list[tuple[str, int, int]]:
        """The calls that asked epoll to say when C{fd} can be written."""
        return [c for c in self.controls if c[1] == fd and c[2] & select.EPOLLOUT]


class Kept(Protocol):
    """A protocol that remembers how its connection ended."""

    lost: Failure | None = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = reason


class Connection:
    """A transport on one end of a socket pair, the other end read here."""

    def __init__(self, reactor: EPollReactor, protocol: Kept | None = None) -> None:
        self.reactor = reactor
        ours, self.peer = socket.socketpair()
        self.peer.setblocking(False)
        self.protocol = protocol if protocol is not None else Kept()
        factory = Factory.forProtocol(lambda: self.protocol)
        reactor.adoptStreamConnection(ours.fileno(), socket.AF_UNIX, factory)
        ours.close()
        assert self.protocol.transport is not None
        self.transport = self.protocol.transport
        self.fd = self.transport.fileno()  # type: ignore[attr-defined]

    def received(self) -> bytes:
        """What the peer can read now (b"" once the transport closed)."""
        chunks = []
        while True:
            try:
                chunk = self.peer.recv(1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def peer_sees_end(self) -> bool:
        try:
            return self.peer.recv(1) == b""
        except BlockingIOError:
            return False


def shut(reactor: EPollReactor) -> None:
    reactor.removeAll()
    for reader in list(reactor._internalReaders):  # the waker
        reactor.removeReader(reader)
        reader.connectionLost(Failure(Exception("test over")))
    reactor._poller.close()


@pytest.fixture(params=[EagerWriteReactor, EPollReactor], ids=["eager", "twisted-epoll"])
def reactor(request: pytest.FixtureRequest) -> Iterator[EPollReactor]:
    made: EPollReactor = request.param()
    made._poller = CountingPoller(made._poller)  # type: ignore[assignment]
    yield made
    shut(made)


@pytest.fixture
def eager() -> Iterator[EagerWriteReactor]:
    made = EagerWriteReactor()
    made._poller = CountingPoller(made._poller)  # type: ignore[assignment]
    yield made
    shut(made)


def poller(reactor: EPollReactor) -> CountingPoller:
    counting = reactor._poller
    assert isinstance(counting, CountingPoller)
    return counting


def test_a_small_write_goes_out_in_one_pass_without_asking_epoll(reactor):
    conn = Connection(reactor)
    for message in (b"first", b"second", b"third"):
        conn.transport.write(message)
        reactor.doIteration(0)
        if isinstance(reactor, EagerWriteReactor):
            assert conn.received() == message, "sent before the reactor waited"
        else:
            reactor.doIteration(0)  # Twisted's: epoll says writable, then it sends
            assert conn.received() == message
    watched = poller(reactor).watched_for_writing(conn.fd)
    if isinstance(reactor, EagerWriteReactor):
        assert watched == []
    else:
        assert len(watched) == 3, "Twisted's reactor asks epoll once per write"


def test_many_connections_written_in_one_pass_are_all_sent_before_the_wait(eager):
    conns = [Connection(eager) for _ in range(50)]
    for i, conn in enumerate(conns):
        conn.transport.write(b"frame %d" % i)
    assert set(eager.getWriters()) == {conn.transport for conn in conns}
    before = len(poller(eager).timeouts)
    eager.doIteration(0)
    assert [conn.received() for conn in conns] == [b"frame %d" % i for i in range(50)]
    assert len(poller(eager).timeouts) == before + 1, "one wait for all of them"
    assert eager.getWriters() == []


def test_what_does_not_fit_is_left_to_epoll_and_arrives_whole_and_in_order(reactor):
    conn = Connection(reactor)
    data = bytes(range(256)) * (BIG // 256)
    conn.transport.write(data)
    got = bytearray()
    for _ in range(10_000):
        reactor.doIteration(0)
        got += conn.received()
        if len(got) == len(data):
            break
    assert bytes(got) == data
    reactor.doIteration(0)
    watched = poller(reactor).watched_for_writing(conn.fd)
    assert watched, "a full socket buffer waits for epoll"
    last = [c for c in poller(reactor).controls if c[1] == conn.fd][-1]
    assert not last[2] & select.EPOLLOUT, "no longer watched for writing once all is sent"
    assert reactor.getWriters() == []


def test_lose_connection_sends_what_was_written_then_closes(reactor):
    conn = Connection(reactor)
    conn.transport.write(b"last words")
    conn.transport.loseConnection()
    for _ in range(3):
        reactor.doIteration(0)
    assert conn.received() == b"last words"
    assert conn.peer_sees_end()
    assert conn.protocol.lost is not None


def test_a_writer_that_stops_before_the_pass_is_not_written(eager):
    conn = Connection(eager)
    conn.transport.write(b"held")
    conn.transport.stopWriting()  # type: ignore[attr-defined]
    eager.doIteration(0)
    assert conn.received() == b""
    conn.transport.startWriting()  # type: ignore[attr-defined]
    eager.doIteration(0)
    assert conn.received() == b"held"


def test_remove_all_hands_back_writers_not_yet_sent(eager):
    conn = Connection(eager)
    conn.transport.write(b"never sent")
    removed = eager.removeAll()
    assert conn.transport in removed
    assert eager.getWriters() == []
    eager.doIteration(0)
    assert conn.received() == b""


@implementer(IPullProducer)
class Chunks:
    """A pull producer writing C{count} chunks, one each time it is asked."""

    def __init__(self, conn: Connection, count: int) -> None:
        self.conn = conn
        self.left = count

    def resumeProducing(self) -> None:
        if self.left:
            self.left -= 1
            self.conn.transport.write(b"chunk %d;" % self.left)

    def stopProducing(self) -> None:
        self.left = 0


def test_a_write_made_while_sending_does_not_wait_for_the_timeout(eager):
    conn = Connection(eager)
    conn.transport.registerProducer(Chunks(conn, 3), False)  # it writes "chunk 2;" at once
    poller(eager).timeouts.clear()
    eager.doIteration(5.0)
    # Sending "chunk 2;" asked the producer for more: "chunk 1;" was written
    # while sending, so the reactor did not wait, and sent it after the poll.
    assert poller(eager).timeouts == [0]
    assert conn.received() == b"chunk 2;chunk 1;"
    eager.doIteration(0)  # "chunk 0;" was written while sending "chunk 1;"
    assert conn.received() == b"chunk 0;"


def test_a_writer_closed_while_waiting_is_dropped(eager):
    conn = Connection(eager)
    conn.transport.write(b"gone")
    conn.transport.connectionLost(Failure(Exception("closed")))  # type: ignore[attr-defined]
    eager.doIteration(0)
    assert eager.getWriters() == []
    assert conn.peer_sees_end()


def test_installing_over_an_installed_reactor_keeps_it_and_says_so():
    from twisted.internet import reactor as before
    from twisted.logger import formatEvent, globalLogPublisher

    events: list[dict[str, object]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        install_if_none()
    finally:
        globalLogPublisher.removeObserver(events.append)
    from twisted.internet import reactor as after

    assert after is before
    [warning] = [
        formatEvent(e) for e in events if e.get("log_namespace") == "pistatsd.eager_writes"
    ]
    assert "writes are sent in the reactor's next pass" in warning
    assert type(before).__name__ in warning


@implementer(IWriteDescriptor)
class Writer:
    """A writer on a pipe that records its turns; its C{doWrite} may stop another writer."""

    def __init__(self, reactor: EagerWriteReactor, fd: int, name: str, turns: list[str]) -> None:
        self.reactor, self.fd, self.name, self.turns = reactor, fd, name, turns
        self.stops: Writer | None = None

    def fileno(self) -> int:
        return self.fd

    def doWrite(self) -> None:
        self.turns.append(self.name)
        self.reactor.removeWriter(self)  # all written
        if self.stops is not None:
            self.reactor.removeWriter(self.stops)

    def connectionLost(self, reason: Failure) -> None:
        pass

    def logPrefix(self) -> str:
        return self.name


def test_a_writer_stopped_by_another_before_its_turn_is_skipped(eager):
    read_end, write_end = os.pipe()
    try:
        turns: list[str] = []
        first, second, third = (Writer(eager, write_end, n, turns) for n in ("1", "2", "3"))
        first.stops = second
        for writer in (first, second, third):
            eager.addWriter(writer)
        eager.doIteration(0)
        assert turns == ["1", "3"]
        assert eager.getWriters() == []
    finally:
        os.close(read_end)
        os.close(write_end)


class Talker(Kept):
    """Logs through the legacy API on every read, and fails on b"boom"."""

    def dataReceived(self, data: bytes) -> None:
        if data == b"boom":
            raise RuntimeError("protocol failed")
        log.msg(f"read {data.decode()}")


def serve_one_read(reactor: EPollReactor, conn: Connection, data: bytes) -> None:
    conn.peer.sendall(data)
    for _ in range(5):
        reactor.doIteration(0)


def test_a_legacy_message_names_the_connection_it_came_from(reactor):
    """The same log system as Twisted's own reactor gives: the transport's logPrefix."""
    first, second = Connection(reactor, Talker()), Connection(reactor, Talker())
    with capturedLogs() as events:
        serve_one_read(reactor, first, b"one")
        serve_one_read(reactor, second, b"two")
        log.msg("outside")
    systems = {e["log_text"]: e["log_system"] for e in events if "log_text" in e}
    assert systems == {
        "read one": first.transport.logPrefix(),
        "read two": second.transport.logPrefix(),
        "outside": "-",
    }


def test_a_failing_protocol_is_logged_with_its_connection_and_closed(reactor):
    conn = Connection(reactor, Talker())
    with capturedLogs() as events:
        serve_one_read(reactor, conn, b"boom")
    [failed] = [e for e in events if e.get("log_level") == LogLevel.critical]
    assert failed["failure"].check(RuntimeError)
    assert failed["log_system"] == conn.transport.logPrefix()
    assert conn.protocol.lost is not None
    assert conn.peer_sees_end()


def test_a_pass_leaves_the_context_stack_as_it_was(eager):
    Connection(eager, Talker())
    tracker = context.theContextTracker.currentContext()
    before = list(tracker.contexts)
    eager.doIteration(0)
    assert tracker.contexts == before


def test_an_interrupted_wait_is_an_empty_pass(eager):
    import errno

    counting = poller(eager)

    def interrupted(timeout: float, maxevents: int) -> list[tuple[int, int]]:
        raise InterruptedError(errno.EINTR, "interrupted")

    counting.poll = interrupted  # type: ignore[method-assign]
    eager.doIteration(0)  # no exception

    def broken(timeout: float, maxevents: int) -> list[tuple[int, int]]:
        raise OSError(errno.EBADF, "bad file descriptor")

    counting.poll = broken  # type: ignore[method-assign]
    contexts = context.theContextTracker.currentContext().contexts
    depth = len(contexts)
    with pytest.raises(OSError):
        eager.doIteration(0)
    assert len(contexts) == depth, "the pass's context is popped when the wait fails"
