#!/usr/bin/env python3
"""Reactor stalls with dashboards open on 7-day ranges, under HTTP load.

    python3 bench/stall.py [--dashboards 20] [--seconds 30] [--every 5]

Run from the project root with the project's python (pistatsd importable);
needs wrk and taskset.  Steps:

1. A history file filled to 2 years (``bench/history.py``'s ``fill()``, 40
   series) in a temp dir.
2. The daemon from a ``.tac`` that builds the real service (``pistatsd.tap``,
   default options, that history file) on the ``pistatsd`` command's reactor
   (``--reactor=pistatsd-epoll``) and adds a probe: a 10 ms timer on the
   daemon's own reactor recording how late each call ran.  A stall is a call
   later than it was due by more than the probe's interval.  Pinned to core 0.
3. Idle for ``--seconds``; then loaded for ``--seconds``: ``--dashboards``
   clients each asking ``/stats/series`` for 7 days of 4 series at 1000 points
   every ``--every`` s and reading ``/ws/broadcast`` (a dashboard's trend view
   and its live tail), with ``wrk -t1 -c50`` on ``GET /sum`` at the same time.
   Load on core 1.
4. Prints the probe's lateness (p50 / p99 / max) per phase, the queries'
   answers and times, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "bench"))

import history  # noqa: E402  (bench/history.py)

TAC = r"""
import json, os, time
from twisted.application.service import Application
from twisted.internet import reactor, task
from pistatsd.tap import Options, makeService

options = Options()
options.parseOptions(json.loads(os.environ["STALL_ARGS"]))
application = Application("pistatsd")
makeService(options).setServiceParent(application)

INTERVAL = 0.01
late = []
due = [None]

def probe():
    now = time.monotonic()
    if due[0] is not None:
        late.append(now - due[0])
    due[0] = now + INTERVAL

def mark(phase):
    with open(os.environ["STALL_OUT"], "a") as f:
        f.write(json.dumps({"phase": phase, "late": late}) + "\n")
    late.clear()

loop = task.LoopingCall(probe)
reactor.callWhenRunning(loop.start, INTERVAL)
reactor.addSystemEventTrigger("before", "shutdown", lambda: mark("end"))
# SIGUSR1: write the lateness seen so far and start again (one phase each).
import signal
signal.signal(signal.SIGUSR1, lambda *_: reactor.callFromThread(mark, "phase"))
"""

NAMES = "cpu.percent,memory.percent,temperature.celsius,load.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{url} did not answer")


class Dashboard(threading.Thread):
    """A trend view on 7 days (re-asked every `every` s) and the live broadcast."""

    def __init__(self, base: str, port: int, every: float, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.base, self.port, self.every, self.stop = base, port, every, stop
        self.times: list[float] = []
        self.errors: list[str] = []
        self.messages = 0

    def run(self) -> None:
        watcher = threading.Thread(target=self.watch, daemon=True)
        watcher.start()
        while not self.stop.is_set():
            now = time.time()
            url = f"{self.base}/stats/series?names={NAMES}&from={now - 7 * 86400:.0f}&points=1000"
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(url, timeout=30) as r:
                    json.loads(r.read())
                self.times.append(time.perf_counter() - started)
            except OSError as e:
                self.errors.append(str(e))
            self.stop.wait(self.every)

    def watch(self) -> None:
        import base64

        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(
            (
                f"GET /ws/broadcast HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        s.settimeout(1)
        while not self.stop.is_set():
            try:
                data = s.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            self.messages += data.count(b'"type"')
        s.close()


def summary(late: list[float]) -> dict[str, float]:
    if not late:
        return {"calls": 0}
    ordered = sorted(late)

    def at(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {
        "calls": len(ordered),
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
        "max_ms": round(1000 * ordered[-1], 2),
        "over_20ms": sum(x > 0.02 for x in ordered),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dashboards", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--every", type=float, default=5)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pistatsd-stall-")
    db = os.path.join(tmp, "history.sqlite3")
    took = history.fill(db, history.series_names(40))
    print(f"history filled in {took:.1f} s ({os.path.getsize(db) >> 20} MiB)")
    tac = os.path.join(tmp, "stall.tac")
    with open(tac, "w") as f:
        f.write(TAC)
    out = os.path.join(tmp, "late.jsonl")
    port = free_port()
    args = ["--port", f"tcp:{port}:interface=127.0.0.1", "--state-dir", tmp, "--history-db", db]
    env = dict(os.environ, STALL_ARGS=json.dumps(args), STALL_OUT=out)
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    log = open(os.path.join(tmp, "daemon.log"), "w")  # noqa: SIM115 (closed below)
    daemon = subprocess.Popen(
        # The reactor the pistatsd command runs on (pistatsd/eager_writes.py).
        ["taskset", "-c", "0", twistd, "-n", "--pidfile=", "--reactor=pistatsd-epoll", "-y", tac],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/alive")
        time.sleep(5)  # settle: the first samples, the history open
        daemon.send_signal(signal.SIGUSR1)  # start the idle phase afresh
        time.sleep(a.seconds)
        daemon.send_signal(signal.SIGUSR1)  # idle phase written
        stop = threading.Event()
        dashboards = [Dashboard(base, port, a.every, stop) for _ in range(a.dashboards)]
        for d in dashboards:
            d.start()
        wrk = subprocess.run(
            [
                "taskset", "-c", "1", "wrk", "-t1", "-c50", f"-d{a.seconds:.0f}s",
                f"{base}/sum?a=3&b=3",
            ],
            capture_output=True,
            text=True,
            timeout=a.seconds + 60,
        )  # fmt: skip
        daemon.send_signal(signal.SIGUSR1)  # loaded phase written
        stop.set()
        for d in dashboards:
            d.join(35)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        log.close()
    with open(out) as f:
        phases = [json.loads(line)["late"] for line in f]
    idle, loaded = summary(phases[1]), summary(phases[2])
    times = sorted(t for d in dashboards for t in d.times)
    result = {
        "idle": idle,
        "loaded": loaded,
        "queries": len(times),
        "query_median_ms": round(1000 * times[len(times) // 2], 1) if times else None,
        "query_max_ms": round(1000 * times[-1], 1) if times else None,
        "query_errors": sum(len(d.errors) for d in dashboards),
        "broadcast_messages": sum(d.messages for d in dashboards),
        "wrk": next((ln.strip() for ln in wrk.stdout.splitlines() if "Requests/sec" in ln), ""),
        "exit": daemon.returncode,
    }
    print(f"probe lateness idle:   {idle}")
    print(f"probe lateness loaded: {loaded}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
