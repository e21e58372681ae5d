#!/usr/bin/env python3
"""The durable history's costs (SPEC §12): size after 2 years, bytes written per
day, CPU and reactor stall per flush.  Not a test: prints figures for RESULTS.md.

    .venv/bin/python bench/history.py [--series 40] [--hours 24] [--dir DIR]

1. size: fills every resolution to its full retention (10 s for 24 h, 1 min
   for 7 d, 15 min for 90 d, 3 h for 2 years) for C{--series} series of
   realistic values, with direct inserts through the same schema code; the
   file's size is what 2 years at defaults come to (retention is by bucket
   count, so a full table is the steady state).
2. bytes written: starting from that full file (pruning active), the real
   L{HistoryService} is fed C{--hours} of 1 s samples on a L{task.Clock},
   flushing every 60 s of sample time, with the writes inline (same thread),
   so C{/proc/self/io} of this process counts them: C{write_bytes} (what
   reaches the block layer) and C{wchar} (bytes handed to write()); per day
   is the measured figure times 24 / hours.  Samples are fed faster than
   real time, but every flush writes exactly what it would at 60 s: the
   bytes depend on the number of flushes and rows, not on the wall clock.
3. flush cost: the same service on its real database thread and the real
   reactor; a flush of 60 s of samples; CPU is the thread's own time for
   the transaction, the stall is the time the reactor thread spends in
   C{flush()} (taking the buckets and handing them over) and in its callback.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)

from twisted.internet.task import Clock  # noqa: E402

from pistatsd.history import schema  # noqa: E402
from pistatsd.history.service import HistoryService  # noqa: E402
from pistatsd.history.store import _scaled, open_store  # noqa: E402
from pistatsd.history.threads import DatabaseThread, InlineWorker  # noqa: E402

NOW = 1_800_000_000


def series_names(count: int) -> list[str]:
    fixed = [
        "cpu.percent", "cpu.freq_mhz", "load.1", "load.5", "load.15", "memory.percent",
        "memory.available", "swap.percent", "temperature.celsius", "disk.percent",
        "net.rx_bytes_per_s", "net.tx_bytes_per_s", "net.eth0.rx_bytes_per_s",
        "net.eth0.tx_bytes_per_s", "net.wlan0.rx_bytes_per_s", "net.wlan0.tx_bytes_per_s",
        "net.wlan0.signal_dbm", "net.wlan0.link_quality", "filesystems./.percent",
        "filesystems./.inodes_percent", "filesystems./boot/firmware.percent",
        "disk_io.mmcblk0.read_bytes_per_s", "disk_io.mmcblk0.write_bytes_per_s",
        "disk_io.mmcblk0.reads_per_s", "disk_io.mmcblk0.writes_per_s",
        "disk_io.mmcblk0.busy_percent", "processes.total", "processes.running",
        "processes.zombie", "throttled.under_voltage", "throttled.freq_capped",
        "throttled.throttled", "throttled.soft_temp_limit", "throttled.core_volts",
    ]  # fmt: skip
    names = fixed[:count]
    names += [f"sensors.extra{i}" for i in range(count - len(names))]
    return names


def value(name: str, rng: random.Random) -> float:
    """A plausible reading: percentages with decimals, byte rates, small counts, flags."""
    if name.startswith("throttled.") and not name.endswith("volts"):
        return float(rng.random() < 0.01)
    if name.endswith("percent") or name.endswith("quality"):
        return round(rng.uniform(0, 100), 1)
    if "bytes" in name or name.endswith("available"):
        return rng.uniform(0, 5e6)
    if name.startswith("processes."):
        return float(rng.randint(0, 300))
    return rng.uniform(0, 60)


def fill(path: str, names: list[str]) -> float:
    """Every resolution at full retention; returns the seconds it took."""
    rng = random.Random(1)
    started = time.perf_counter()
    opened = open_store(path, 1 << 40)
    db = opened.store.db
    db.execute("BEGIN")
    ids = [db.execute("INSERT INTO series (name) VALUES (?)", (n,)).lastrowid for n in names]
    for resolution in schema.RESOLUTIONS:
        step = resolution.step
        count = schema.capacity(resolution)
        first = NOW // step * step - (count - 1) * step
        samples = step  # one sample a second
        rows = []
        for slot in range(count):  # slots in the order the store hands them out
            bucket = first + slot * step
            for name, sid in zip(names, ids, strict=True):
                a, b = value(name, rng), value(name, rng)
                lo, hi = min(a, b), max(a, b)
                rows.append(
                    (
                        slot,
                        sid,
                        bucket,
                        _scaled(lo),
                        _scaled((lo + hi) / 2 * samples),
                        _scaled(hi),
                        samples,
                    )
                )
            if len(rows) > 50_000:
                db.executemany(schema.upsert_sql(step), rows)
                rows = []
        db.executemany(schema.upsert_sql(step), rows)
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    opened.store.close()
    return time.perf_counter() - started


def io_counters() -> dict[str, int]:
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


def snapshots(names: list[str], start: int, seconds: int, rng: random.Random):
    for t in range(start, start + seconds):
        yield t, {name: value(name, rng) for name in names}


def bytes_written(
    path: str, names: list[str], hours: float, flush: int = 60
) -> tuple[int, int, int]:
    """Feed C{hours} of 1 s samples through the service; (write_bytes, wchar, flushes)."""
    clock = Clock()
    service = HistoryService(path, clock=clock, worker=InlineWorker(), max_bytes=64 << 20)
    service.startService()
    rng = random.Random(2)
    seconds = int(hours * 3600)
    before = io_counters()
    flushes = 0
    from pistatsd.history.buckets import Buckets  # noqa: F401 - same path as record()

    for t, numbers in snapshots(names, NOW, seconds, rng):
        service._buckets.add(float(t), numbers)  # record() minus flatten()
        if (t - NOW) % flush == flush - 1:
            service.flush()
            flushes += 1
    service.stopService()
    after = io_counters()
    return after["write_bytes"] - before["write_bytes"], after["wchar"] - before["wchar"], flushes


def flush_cost(path: str, names: list[str], rounds: int) -> tuple[list[float], list[float]]:
    """(thread CPU seconds, reactor-thread seconds) per flush on the real thread."""
    from twisted.internet import reactor

    service = HistoryService(path, clock=reactor, worker=DatabaseThread(reactor))
    cpu: list[float] = []
    stall: list[float] = []
    rng = random.Random(3)
    state = {"t": NOW + 10 * 86400}

    def one(_: object = None) -> None:
        if len(cpu) >= rounds:
            service.stopService().addBoth(lambda _: reactor.stop())
            return
        for t, numbers in snapshots(names, state["t"], 60, rng):
            service._buckets.add(float(t), numbers)
        state["t"] += 60
        began = time.perf_counter()
        d = service.flush()
        stall.append(time.perf_counter() - began)

        def done(_: object) -> None:
            cpu.append(service.state()["last_flush_cpu_seconds"])
            reactor.callLater(0.05, one)

        d.addCallback(done)

    def start() -> None:
        service.startService()
        service._opening.addCallback(one)

    reactor.callWhenRunning(start)
    reactor.run()
    return cpu, stall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=40)
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--flush", type=int, default=60, help="--history-flush, seconds")
    parser.add_argument("--dir", default=None, help="where the file goes (not a tmpfs)")
    args = parser.parse_args()
    names = series_names(args.series)
    directory = tempfile.mkdtemp(prefix="pistatsd-history-bench-", dir=args.dir)
    try:
        path = os.path.join(directory, "history.sqlite3")
        took = fill(path, names)
        size = os.path.getsize(path)
        rows = sum(r.keep // r.step for r in schema.RESOLUTIONS) * len(names)
        print(f"size after 2 years, {len(names)} series: {size / 2**20:.1f} MiB "
              f"({rows} rows, {size / rows:.1f} bytes/row; filled in {took:.1f} s)")  # fmt: skip
        started = time.perf_counter()
        write_bytes, wchar, flushes = bytes_written(path, names, args.hours, args.flush)
        took = time.perf_counter() - started
        scale = 24 / args.hours
        print(f"written over {args.hours:g} h of samples ({flushes} flushes, {took:.1f} s): "
              f"write_bytes {write_bytes / 2**20:.1f} MiB, wchar {wchar / 2**20:.1f} MiB; "
              f"per day: write_bytes {write_bytes * scale / 2**20:.1f} MiB, "
              f"wchar {wchar * scale / 2**20:.1f} MiB")  # fmt: skip
        print(f"file after the run: {os.path.getsize(path) / 2**20:.1f} MiB")
        cpu, stall = flush_cost(path, names, args.rounds)
        cpu.sort()
        stall.sort()
        mid = len(cpu) // 2
        print(f"flush of 60 s ({len(cpu)} rounds): thread CPU median {cpu[mid] * 1e3:.2f} ms, "
              f"max {cpu[-1] * 1e3:.2f} ms; reactor thread median {stall[mid] * 1e6:.0f} us, "
              f"max {stall[-1] * 1e6:.0f} us")  # fmt: skip
        assert all(math.isfinite(x) for x in cpu)
    finally:
        shutil.rmtree(directory)


if __name__ == "__main__":
    main()
