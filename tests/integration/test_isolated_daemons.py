"""Test daemons are isolated: a state dir each, a port the kernel picks, read from the log."""

from __future__ import annotations

import ssl
import urllib.request

from tests.daemon import LOOPBACK, Daemon, bound_ports
from tests.isolation import changes, real_state_dirs, snapshot


def state_dir_of(d: Daemon) -> str:
    return d.argv[d.argv.index("--state-dir") + 1]


def test_each_daemon_keeps_its_state_to_itself(daemon):
    """A generated certificate lands in the daemon's own dir, never in the real ones."""
    before = {path: snapshot(path) for path in real_state_dirs()}
    first = daemon("--tls", "ssl:0:interface=127.0.0.1")
    second = daemon("--tls", "ssl:0:interface=127.0.0.1")
    assert state_dir_of(first) != state_dir_of(second)
    for d in (first, second):
        context = ssl.create_default_context(cafile=f"{state_dir_of(d)}/tls/cert.pem")
        url = f"https://localhost:{d.bound_port('tls')}/sum?a=1&b=2"
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            assert response.read() == b"Sum: 3"
    assert {path: changes(before[path], snapshot(path)) for path in before} == {
        path: [] for path in before
    }


def test_the_port_is_read_from_the_log(daemon):
    d = daemon("--tls", "ssl:0:interface=127.0.0.1")
    assert LOOPBACK in d.argv
    assert bound_ports(d.text()) == [d.port]
    assert d.port not in (None, 0) and d.bound_port("tls") not in (0, d.port)
    assert d.get("/alive")[2] == b"Alive"
