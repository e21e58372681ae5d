"""The unit room: in memory, on temp files, in seconds.

Nothing here may open a socket or start a process: for the whole room the
ways to do either raise L{OutsideWorld}, and a test whose code swallowed that
error fails all the same.  A test that needs the real thing belongs in
C{tests/integration}.
"""

from __future__ import annotations

import _posixsubprocess
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from typing import NoReturn

import pytest


class OutsideWorld(AssertionError):
    """A unit test reached for a socket or a process."""


#: Socket methods that reach an address (creating a socket, or a socketpair, is fine).
SOCKET_CALLS = ("bind", "connect", "connect_ex", "sendto", "sendmsg")
#: Every way C{os} starts a process.
PROCESS_CALLS = ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system")


def refusals() -> list[tuple[object, str, str]]:
    """What is refused: (object, attribute, what a test was trying to do)."""
    from twisted.internet import reactor

    return [
        *((socket.socket, name, f"socket.{name}()") for name in SOCKET_CALLS),
        (subprocess.Popen, "__init__", "start a subprocess"),
        (_posixsubprocess, "fork_exec", "start a subprocess"),
        *((os, name, f"os.{name}()") for name in PROCESS_CALLS),
        (reactor, "spawnProcess", "reactor.spawnProcess()"),
    ]


@pytest.fixture(scope="package", autouse=True)
def refused() -> Iterator[list[str]]:
    """Every refused attempt in the room (module fixtures included), oldest first."""
    attempts: list[str] = []

    def refuse(what: str) -> Callable[..., NoReturn]:
        def refusal(*args: object, **kwargs: object) -> NoReturn:
            attempts.append(what)
            raise OutsideWorld(f"a unit test may not {what}: it belongs in tests/integration")

        return refusal

    with pytest.MonkeyPatch.context() as patch:
        for target, name, what in refusals():
            if hasattr(target, name):
                patch.setattr(target, name, refuse(what))
        yield attempts


@pytest.fixture(autouse=True)
def _no_refusal_swallowed(refused: list[str]) -> Iterator[None]:
    """Fail the test that tried, even if the code under test caught the error."""
    yield
    tried, refused[:] = list(refused), []
    if tried:
        pytest.fail(f"tried to {', '.join(dict.fromkeys(tried))} (unit tests may not)")
