"""CPU per HTTP request: pistatsd's whole HTTP stack against raw twisted.web, in memory.

    python bench/request_cost.py [--shared ../shared/bench] [--requests 20000] [--rounds 7]

wrk's rates on a shared 2-vCPU guest move by 10-30% between runs of the same
code, which hides changes of a few percent.  This feeds the same keep-alive
request bytes many times, on one connection over a C{StringTransport}, to

  pistatsd     the daemon's real C{Site}: built by C{makeService} on a
               C{MemoryReactorClock} with its defaults (history, alerts, host
               check, header deadline, request accounting all on)
  twisted-raw  the shared harness's raw twisted.web peer: C{static.File} root
               with its C{/sum} leaf, access log off

and prints the best of C{--rounds} rounds of CPU time per request (process
time, microseconds) and pistatsd's cost as a ratio of raw's.  No sockets and
no reactor loop: the reactor's own share (epoll, C{send}, C{recv}) is the same
for both and is left out, so the ratio here is further from 1 than wrk's.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from collections.abc import Callable

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.server import Site

HOST = b"127.0.0.1:8888"
REQUESTS: dict[str, bytes] = {
    "GET /sum": b"GET /sum?a=1&b=2 HTTP/1.1\r\nHost: " + HOST + b"\r\n\r\n",
    "GET /stats": b"GET /stats HTTP/1.1\r\nHost: " + HOST + b"\r\n\r\n",
    "POST /sum": (
        b"POST /sum HTTP/1.1\r\nHost: " + HOST + b"\r\nContent-Type: application/json\r\n"
        b'Content-Length: 15\r\n\r\n{"a":3,"b":4.5}'
    ),
    "GET /small.html": b"GET /small.html HTTP/1.1\r\nHost: " + HOST + b"\r\n\r\n",
}
#: raw twisted.web has no /stats: the harness compares pistatsd's with raw's /sum.
RAW_PATH = {"GET /stats": "GET /sum"}


def pistatsd_site(www: str, state_dir: str) -> tuple[Site, Callable[[], None]]:
    """The daemon's own site at its defaults, and how to stop its services."""
    from pistatsd.config import build_config
    from pistatsd.tap import makeService

    reactor = MemoryReactorClock()
    config = build_config(
        {"port": ["tcp:8888"], "heartbeat": "0", "www": www, "state-dir": state_dir}
    )
    service = makeService(config, reactor)
    service.startService()
    [(_port, site, _backlog, _interface)] = reactor.tcpServers
    return site, service.stopService


def raw_site(shared: str) -> Site:
    """The shared harness's raw twisted.web peer, as its C{main} builds it."""
    sys.path.insert(0, os.path.join(shared, "peers"))
    import twisted_raw_peer  # the shared harness's peer: its Sum and QuietSite
    from twisted.web import static

    root = static.File(twisted_raw_peer.common.WWW)
    root.putChild(b"sum", twisted_raw_peer.Sum())
    return twisted_raw_peer.QuietSite(root)


def connect(site: Site) -> tuple[object, StringTransport]:
    """One keep-alive connection from 127.0.0.1 to C{site}."""
    transport = StringTransport(
        hostAddress=IPv4Address("TCP", "127.0.0.1", 8888),
        peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
    )
    protocol = site.buildProtocol(transport.getPeer())
    assert protocol is not None
    protocol.makeConnection(transport)
    return protocol, transport


def cost(site: Site, request: bytes, count: int, rounds: int) -> float | None:
    """Best CPU microseconds per request over C{rounds} rounds of C{count} requests.

    None when the answer is not written at once: raw's C{static.File} streams
    even a small file from the reactor, which does not run here.
    """
    protocol, transport = connect(site)
    feed = protocol.dataReceived  # type: ignore[attr-defined]
    feed(request)
    answer = transport.value()
    if not answer:
        return None
    if not answer.startswith(b"HTTP/1.1 200 "):
        raise SystemExit(f"not answered 200: {answer[:200]!r}")
    best = float("inf")
    for _ in range(rounds):
        transport.clear()
        gc.collect()
        start = time.process_time()
        for i in range(count):
            feed(request)
            if i & 63 == 0:
                transport.clear()
        best = min(best, (time.process_time() - start) / count)
    return best * 1e6


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", default=os.path.join(here, "..", "..", "shared", "bench"))
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    shared = os.path.abspath(a.shared)
    www = os.path.join(shared, "www")
    if not os.path.isfile(os.path.join(www, "small.html")):
        raise SystemExit(f"{www}: no small.html (run {shared}/make_www.py)")
    raw = raw_site(shared)
    with tempfile.TemporaryDirectory(prefix="request-cost-") as state_dir:
        ours, stop = pistatsd_site(www, state_dir)
        print(f"{'request':16} {'pistatsd µs':>12} {'raw µs':>8} {'pistatsd/raw':>13}")
        for name, request in REQUESTS.items():
            mine = cost(ours, request, a.requests, a.rounds)
            theirs = cost(raw, REQUESTS[RAW_PATH.get(name, name)], a.requests, a.rounds)
            if mine is None:
                raise SystemExit(f"pistatsd did not answer {name} at once")
            if theirs is None:
                print(f"{name:16} {mine:12.1f} {'n/a':>8} {'n/a':>13}")
            else:
                print(f"{name:16} {mine:12.1f} {theirs:8.1f} {mine / theirs:12.2f}x")
        stop()


if __name__ == "__main__":
    main()
