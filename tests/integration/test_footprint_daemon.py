"""The real daemon leaves out what it does not use, and still serves what uses the rest.

pyOpenSSL and cryptography unless TLS is configured; cbor2 and cffi's C
parser, which Autobahn imports for WAMP and for its build scripts; and, run
by the C{pistatsd} command, the standard library's OpenSSL bindings until
the daemon is ready.  Read
from the running process's memory map: a compiled library is mapped only
when something imported it.  A fresh interpreter shows the pure-Python ones.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
import subprocess
import sys

import pytest
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect

from tests.daemon import PROJECT, Daemon

#: cryptography's compiled module; pyOpenSSL cannot load without it.
CRYPTOGRAPHY_LIBRARY = "cryptography/hazmat/bindings/_rust"
#: cbor2's compiled module, which Autobahn's WAMP messages import.
CBOR2_LIBRARY = "cbor2/_cbor2"
#: The standard library's OpenSSL bindings, and the system's OpenSSL they load.
STDLIB_SSL, STDLIB_HASHLIB, SYSTEM_LIBCRYPTO = "/_ssl.", "/_hashlib.", "/libcrypto.so"


def in_a_fresh_interpreter(code: str) -> object:
    """Run C{code} in a new Python from the project's directory; the JSON of its last line."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=PROJECT
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def mapped(d: Daemon, fragment: str) -> bool:
    assert d.proc is not None
    with open(f"/proc/{d.proc.pid}/maps", encoding="utf-8") as f:
        return any(fragment in line for line in f)


def test_defaults_leave_tls_out_and_still_serve_websockets(daemon):
    d = daemon(launcher=False)  # twistd pistatsd: the command leaves out more (below)
    assert "no TLS configured: pyOpenSSL and cryptography are not loaded" in d.text()
    frozen = re.search(r"start-up heap frozen: (\d+) objects", d.text())
    assert frozen is not None and int(frozen[1]) > 10_000, "the start-up heap is frozen"
    assert d.get("/sum?a=1&b=2")[2] == b"Sum: 3"
    # An echo runs Autobahn's server code with its WAMP modules deferred and
    # pistatsd's wrappers of its compiled UTF-8 validator and unmasker.
    long_text = "π over plain TCP, " * 40  # unmasked by the SIMD path
    with connect(f"ws://127.0.0.1:{d.port}/ws/echo", open_timeout=10) as ws:
        for message in ("π over plain TCP", long_text, bytes(range(256)) * 4):
            ws.send(message)
            assert ws.recv(timeout=10) == message
        ws.send("€".encode()[:2] + b"!", text=True)
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    assert not mapped(d, CRYPTOGRAPHY_LIBRARY)
    assert not mapped(d, CBOR2_LIBRARY)
    assert mapped(d, "_nvx_xormasker"), "Autobahn's compiled helpers are used"
    assert mapped(d, "_sqlite3"), "the map is read"


def test_tls_configured_loads_it_and_serves_https(daemon, tmp_path):
    d = daemon(
        "--tls", "ssl:0:interface=127.0.0.1", "--state-dir", str(tmp_path / "state"), launcher=False
    )
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


#: Run in a fresh interpreter: what the daemon's finder makes of Autobahn's imports.
FRESH_IMPORT = """
import json, sys
from pistatsd.config import build_config
from pistatsd.footprint import leave_out
leave_out(build_config({}))
import autobahn.twisted.resource, autobahn.twisted.websocket
from autobahn.websocket import protocol
from pistatsd.ws import nvx
print(json.dumps({
    "loaded": sorted(m for m in ("pycparser", "cffi.cparser", "cbor2._cbor2", "OpenSSL")
                     if m in sys.modules),
    "validator": protocol.Utf8Validator is nvx.Utf8Validator,
    "masker": protocol.create_xor_masker is nvx.create_xor_masker,
}))
"""


def test_autobahn_loads_without_cffi_s_parser_cbor2_or_pyopenssl():
    assert in_a_fresh_interpreter(FRESH_IMPORT) == {
        "loaded": [],
        "validator": True,
        "masker": True,
    }


#: In a fresh interpreter: the daemon's service started, then /metrics scraped once.
SCRAPED_LATER = """
import json, sys, tempfile
from twisted.internet.testing import MemoryReactorClock
from pistatsd.config import build_config
from pistatsd.tap import makeService
from tests.support import request
config = build_config({"port": ["tcp:8888"], "heartbeat": "0", "state-dir": tempfile.mkdtemp()})
reactor = MemoryReactorClock()
service = makeService(config, reactor)
service.startService()
before = "prometheus_client" in sys.modules
[(_port, site, _backlog, _interface)] = reactor.tcpServers
answer = request(site, "GET", "/metrics")
print(json.dumps({
    "before": before,
    "after": "prometheus_client" in sys.modules,
    "status": answer.status,
    "families": b"pistatsd_http_requests_total" in answer.body,
}))
service.stopService()
"""


def test_prometheus_client_waits_for_the_first_scrape():
    assert in_a_fresh_interpreter(SCRAPED_LATER) == {
        "before": False,
        "after": True,
        "status": 200,
        "families": True,
    }


def test_the_command_leaves_the_standard_library_s_openssl_out_until_ready(daemon):
    d = daemon()
    assert d.get("/sum?a=1&b=2")[2] == b"Sum: 3"
    # The WebSocket handshake's SHA-1 comes from hashlib's own implementation.
    with connect(f"ws://127.0.0.1:{d.port}/ws/echo", open_timeout=10) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
    for library in (STDLIB_SSL, STDLIB_HASHLIB, SYSTEM_LIBCRYPTO):
        assert not mapped(d, library), library
    # prometheus_client's exposition imports ssl: once ready, it gets it.
    status, _headers, body = d.get("/metrics")
    assert status == 200 and b"pistatsd_http_requests_total" in body
    assert mapped(d, STDLIB_SSL)


def test_the_command_with_tls_loads_pyopenssl_but_not_the_standard_library_s(daemon, tmp_path):
    state = tmp_path / "state"
    d = daemon("--tls", "ssl:0:interface=127.0.0.1", "--state-dir", str(state))
    context = ssl.create_default_context(cafile=str(state / "tls" / "cert.pem"))
    conn = http.client.HTTPSConnection(
        "localhost", d.bound_port("tls"), timeout=10, context=context
    )
    try:
        conn.request("GET", "/sum?a=1&b=2")
        assert conn.getresponse().read() == b"Sum: 3"
    finally:
        conn.close()
    assert mapped(d, CRYPTOGRAPHY_LIBRARY)
    assert not mapped(d, STDLIB_SSL) and not mapped(d, STDLIB_HASHLIB)
    # TLS's start-up checks build endpoints without installing Twisted's default reactor.
    assert "reactor class: pistatsd.eager_writes.EagerWriteReactor" in d.text()


#: In a fresh interpreter: the command's finder, then what start-up imports of
#: the standard library that could have used OpenSSL, then ready.
WHILE_STARTING = """
import json, sys
from pistatsd.leftout import leave_out_while_starting, startup_over
leave_out_while_starting()
import asyncio, hashlib, hmac, http.client, urllib.request
import twisted.internet.defer, twisted.web.http
loaded = sorted(m for m in ("ssl", "_ssl", "_hashlib") if m in sys.modules)
answers = [
    hashlib.sha1(b"abc").hexdigest(),
    hashlib.sha256(b"abc").hexdigest(),
    hmac.new(b"key", b"message", "sha256").hexdigest(),
]
startup_over()
import ssl
print(json.dumps({"loaded": loaded, "answers": answers, "ssl_later": ssl.OPENSSL_VERSION != ""}))
"""


def test_what_starts_without_the_standard_library_s_openssl_still_hashes_right():
    assert in_a_fresh_interpreter(WHILE_STARTING) == {
        "loaded": [],
        "answers": [
            "a9993e364706816aba3e25717850c26c9cd0d89d",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "6e9ef29b75fffc5b7abae527d58fdadb2fe42e7219011976917343065f58ed4a",
        ],
        "ssl_later": True,
    }


#: In a fresh interpreter: treq imported under the daemon's finder, then the
#: static files' MIME table built for an unusual extension.
TREQ_DEFERRED = """
import importlib.util, json, sys
from pistatsd.config import build_config
from pistatsd.footprint import leave_out
leave_out(build_config({}))
import treq
from treq.client import HTTPClient
lazy = sorted(
    name for name in ("treq.multipart", "mimetypes")
    if isinstance(sys.modules[name], importlib.util._LazyModule)
)
from pistatsd.web.static.contenttypes import contentTypeFor
print(json.dumps({
    "lazy": lazy,
    "client": HTTPClient.__name__,
    "tar": contentTypeFor(b"backup.tar").decode(),
    "mimetypes_ran": hasattr(sys.modules["mimetypes"], "knownfiles"),
}))
"""


def test_treq_leaves_its_uploads_and_mimetypes_unrun_until_used():
    assert in_a_fresh_interpreter(TREQ_DEFERRED) == {
        "lazy": ["mimetypes", "treq.multipart"],
        "client": "HTTPClient",
        "tar": "application/x-tar",
        "mimetypes_ran": True,
    }
