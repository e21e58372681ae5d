"""The two rooms keep their promises: unit tests cannot reach out, every test has a room."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys

import pytest

from tests.unit.conftest import OutsideWorld

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
    "attempt",
    [
        lambda: socket.create_connection(("127.0.0.1", 9), timeout=1),
        lambda: socket.socket().bind(("127.0.0.1", 0)),
        lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"x", "/nonexistent"),
        lambda: subprocess.run([sys.executable, "-c", "pass"], check=False),
        lambda: os.fork(),
        lambda: os.system("true"),
        lambda: asyncio.run(asyncio.create_subprocess_exec(sys.executable, "-c", "pass")),
    ],
    ids=["connect", "bind", "sendto", "subprocess", "fork", "system", "asyncio"],
)
def test_reaching_out_is_refused(attempt, refused: list[str]) -> None:
    with pytest.raises(OutsideWorld, match="belongs in tests/integration"):
        attempt()
    assert refused, "the attempt was not recorded"
    refused.clear()  # seen: this test meant it


def test_the_reactor_spawns_nothing(refused: list[str]) -> None:
    from twisted.internet import reactor
    from twisted.internet.protocol import ProcessProtocol

    with pytest.raises(OutsideWorld):
        reactor.spawnProcess(ProcessProtocol(), sys.executable, [sys.executable, "-c", "pass"])
    assert refused == ["reactor.spawnProcess()"]
    refused.clear()


def test_a_swallowed_refusal_is_still_recorded(refused: list[str]) -> None:
    """Code that catches every error cannot hide an attempt: the test fails at teardown."""
    with contextlib.suppress(Exception):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    assert refused == ["socket.connect()"]
    refused.clear()


def test_socket_pairs_and_event_loops_still_work() -> None:
    """In-memory plumbing (what Twisted's and asyncio's wakers use) is not refused."""
    a, b = socket.socketpair()
    with a, b:
        a.send(b"x")
        assert b.recv(1) == b"x"
    asyncio.run(asyncio.sleep(0))


def test_every_test_module_is_in_a_room() -> None:
    strays = []
    for directory, _, files in os.walk(TESTS):
        room = os.path.relpath(directory, TESTS).split(os.sep)[0]
        if room in ("unit", "integration"):
            continue
        strays += [
            os.path.join(directory, f) for f in files if f.startswith("test_") and f.endswith(".py")
        ]
    assert strays == [], "put each in tests/unit (in memory) or tests/integration"
