"""The integration room's fixtures: real daemons, stopped at teardown."""

from __future__ import annotations

import pytest


@pytest.fixture
def daemon():
    """Start real pistatsd daemons (C{daemon("--opt", "v")}); any still running are
    stopped at teardown."""
    from tests.daemon import Daemon

    started: list[Daemon] = []

    def start(*args: str, **kw) -> Daemon:
        d = Daemon(args, **kw).start()
        started.append(d)
        return d

    yield start
    for d in started:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()
