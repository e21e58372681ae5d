#!/usr/bin/env python3
"""Time C{GET /stats/series} over 30 days, and C{/alive} while such queries run.

Against a running daemon (its URL), ideally one whose history database was
filled to 30 days or more:

    python3 bench/series_query.py http://127.0.0.1:8888 [--reps 20] [--seconds 10]

 1. A 30-day query of three series at 1000 points, C{--reps} times one after
    another: median and p95 latency (target: median <= 150 ms).
 2. C{/alive} one request after another, first for half of C{--seconds}
    alone (the baseline), then for C{--seconds} while four clients loop on
    that query: p50/p99/max latency (target: p99 < 20 ms under load).

Standard library only (C{http.client}, threads), so it runs with any Python 3.
Prints one JSON document; exit status 1 when a target is missed, 2 for usage
errors or an unreachable daemon.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
from urllib.parse import urlencode, urlsplit

PREFERRED = ("cpu.percent", "memory.percent", "load.1", "temperature.celsius", "swap.percent")
QUERY_TARGET_MS = 150.0
ALIVE_P99_TARGET_MS = 20.0
CONCURRENT = 4
DAYS = 30
POINTS = 1000


class Target:
    """Where the daemon listens."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s)://host:port URL")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")

    def connection(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return kind(self.host, self.port, timeout=30)


def get(conn: http.client.HTTPConnection, target: Target, path: str) -> tuple[int, bytes, float]:
    """One GET on a kept-alive connection: status, body, seconds taken."""
    began = time.perf_counter()
    conn.request("GET", target.prefix + path, headers={"Accept": "application/json"})
    response = conn.getresponse()
    body = response.read()
    return response.status, body, time.perf_counter() - began


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the daemon, http://host:port")
    parser.add_argument("--reps", type=int, default=20, help="sequential queries (default 20)")
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="how long /alive is timed under load"
    )
    parser.add_argument("--names", help="comma-separated series (default: three the daemon has)")
    args = parser.parse_args(argv)
    try:
        target = Target(args.url)
        conn = target.connection()
        status, body, _ = get(conn, target, "/stats/series")
    except (ValueError, OSError) as e:
        print(f"series_query: {e}", file=sys.stderr)
        return 2
    if status != 200:
        print(f"series_query: GET /stats/series answered {status}", file=sys.stderr)
        return 2
    index = json.loads(body)
    if args.names:
        names = args.names.split(",")
    else:
        names = [n for n in PREFERRED if n in index["series"]][:3]
    now = time.time()
    query = "/stats/series?" + urlencode(
        {"names": ",".join(names), "from": f"{now - DAYS * 86400:.0f}", "points": POINTS}
    )

    times: list[float] = []
    answer: dict = {}
    for _ in range(args.reps):
        status, body, took = get(conn, target, query)
        if status != 200:
            print(f"series_query: {query} answered {status}: {body[:200]!r}", file=sys.stderr)
            return 2
        times.append(took * 1000)
        answer = json.loads(body)
    filled = {name: sum(v is not None for v in answer["values"][name]["avg"]) for name in names}

    def probe(conn: http.client.HTTPConnection, seconds: float) -> list[float]:
        times: list[float] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            _, _, took = get(conn, target, "/alive")
            times.append(took * 1000)
            time.sleep(0.005)  # a probe, not a flood: the queries are the load
        return times

    idle = probe(target.connection(), args.seconds / 2)

    stop = threading.Event()
    loaded: list[float] = []

    def load() -> None:
        mine = target.connection()
        while not stop.is_set():
            _, _, took = get(mine, target, query)
            loaded.append(took * 1000)

    workers = [threading.Thread(target=load, daemon=True) for _ in range(CONCURRENT)]
    for worker in workers:
        worker.start()
    alive = probe(target.connection(), args.seconds)
    stop.set()
    for worker in workers:
        worker.join(60)

    result = {
        "url": args.url,
        "oldest_days": None if index.get("oldest") is None else (now - index["oldest"]) / 86400,
        "query": {
            "names": names,
            "days": DAYS,
            "points": POINTS,
            "step": answer.get("step"),
            "points_with_data": filled,
            "reps": len(times),
            "median_ms": statistics.median(times),
            "p95_ms": percentile(times, 95),
            "target_ms": QUERY_TARGET_MS,
        },
        "alive_idle": {
            "requests": len(idle),
            "p50_ms": statistics.median(idle),
            "p99_ms": percentile(idle, 99),
        },
        "alive_under_load": {
            "concurrent_queries": CONCURRENT,
            "queries_done": len(loaded),
            "query_median_ms": statistics.median(loaded) if loaded else None,
            "requests": len(alive),
            "p50_ms": statistics.median(alive),
            "p99_ms": percentile(alive, 99),
            "max_ms": max(alive),
            "target_p99_ms": ALIVE_P99_TARGET_MS,
        },
    }
    passed = (
        result["query"]["median_ms"] <= QUERY_TARGET_MS
        and result["alive_under_load"]["p99_ms"] < ALIVE_P99_TARGET_MS
    )
    result["passed"] = passed
    print(json.dumps(result, indent=2))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
