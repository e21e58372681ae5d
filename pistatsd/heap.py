"""The objects built at start-up, kept out of the garbage collector's full passes.

A daemon's start-up leaves some 60 000 objects that live as long as it does:
modules, classes, functions, the services.  CPython's collector walks all
of them at every full (generation 2) pass, which it starts on its own
whenever enough new objects have survived: about 16-19 ms of the reactor's
time on a 2-core x86 guest, several times that on a Pi, with every request
and WebSocket message waiting meanwhile.  L{freeze_startup_heap} collects
once, then moves what is left into the collector's permanent generation
(C{gc.freeze}), which no pass walks: later full passes see only what was
made since.

What is frozen is still freed by reference counting; only a reference cycle
among frozen objects that becomes garbage later is never reclaimed, and
start-up objects live as long as the daemon anyway.
"""

from __future__ import annotations

import gc
import time
from typing import Protocol

from twisted.logger import Logger

_log = Logger()


class Collector(Protocol):
    """The part of the C{gc} module used here (a stand-in in tests)."""

    def collect(self) -> int: ...

    def freeze(self) -> None: ...

    def get_freeze_count(self) -> int: ...


def freeze_startup_heap(collector: Collector = gc) -> int:
    """Collect the start-up's garbage, freeze the rest; the number of objects frozen."""
    started = time.perf_counter()
    collector.collect()
    pass_ms = (time.perf_counter() - started) * 1000
    collector.freeze()
    frozen = collector.get_freeze_count()
    _log.info(
        "start-up heap frozen: {objects} objects out of the collector's full passes"
        " (one pass over them took {ms:.1f} ms)",
        objects=frozen,
        ms=pass_ms,
    )
    return frozen
