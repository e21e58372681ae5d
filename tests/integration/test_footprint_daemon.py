"""The real daemon leaves pyOpenSSL and cryptography out unless TLS is configured.

Read from the running process's memory map: cryptography's compiled library
(which pyOpenSSL needs) is mapped only when something imported it.
"""

from __future__ import annotations

import http.client
import ssl

from websockets.sync.client import connect

from tests.daemon import Daemon

#: cryptography's compiled module; pyOpenSSL cannot load without it.
CRYPTOGRAPHY_LIBRARY = "cryptography/hazmat/bindings/_rust"


def mapped(d: Daemon, fragment: str) -> bool:
    assert d.proc is not None
    with open(f"/proc/{d.proc.pid}/maps", encoding="utf-8") as f:
        return any(fragment in line for line in f)


def test_defaults_leave_tls_out_and_still_serve_websockets(daemon):
    d = daemon()
    assert "no TLS configured: pyOpenSSL and cryptography are not loaded" in d.text()
    assert d.get("/sum?a=1&b=2")[2] == b"Sum: 3"
    # An echo runs Autobahn's server code with its WAMP modules deferred.
    with connect(f"ws://127.0.0.1:{d.port}/ws/echo", open_timeout=10) as ws:
        ws.send("π over plain TCP")
        assert ws.recv(timeout=10) == "π over plain TCP"
    assert not mapped(d, CRYPTOGRAPHY_LIBRARY)
    assert mapped(d, "_sqlite3"), "the map is read"


def test_tls_configured_loads_it_and_serves_https(daemon, tmp_path):
    d = daemon("--tls", "ssl:0:interface=127.0.0.1", "--state-dir", str(tmp_path / "state"))
    port = d.bound_port("tls")
    assert "pyOpenSSL and cryptography are not loaded" not in d.text()
    assert mapped(d, CRYPTOGRAPHY_LIBRARY)
    context = ssl.create_default_context(cafile=str(tmp_path / "state" / "tls" / "cert.pem"))
    conn = http.client.HTTPSConnection("localhost", port, timeout=10, context=context)
    try:
        conn.request("GET", "/sum?a=1&b=2")
        assert conn.getresponse().read() == b"Sum: 3"
    finally:
        conn.close()
