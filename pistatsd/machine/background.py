"""The parts of the snapshot measured in worker threads, and the pool they share.

C{filesystems} and C{processes} cannot be read on the reactor thread (see
their modules), so they are services around one small L{WorkerPool}.  The
composition root adds L{ThreadedParts} to the service tree before the
sampler (so the pool starts first and stops last) and hands its
L{ThreadedParts.sections} to the sampler.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.application.service import MultiService

from pistatsd.config import Config
from pistatsd.machine.filesystems import FilesystemsService
from pistatsd.machine.processes import ProcessesService, processes_off
from pistatsd.machine.threads import WorkerPool

POOL_THREADS = 4
"""Threads for: at most two stuck filesystem calls, the shared one, a process scan."""


class ThreadedParts(MultiService):
    """The worker pool and the services that use it, started and stopped together.

    Children stop in reverse order: the collectors stop scheduling work
    before the pool stops, and the pool's stop never hangs on a stuck call.
    """

    def __init__(self, pool: WorkerPool) -> None:
        super().__init__()
        self.pool = pool
        pool.setServiceParent(self)
        #: Snapshot sections for the sampler, one per part.
        self.sections: list[Callable[[], Mapping[str, Any]]] = []


def threaded_parts(config: Config, reactor: Any) -> ThreadedParts:
    """C{filesystems} and C{processes} (or its C{null} when C{--process-interval 0})."""
    parts = ThreadedParts(WorkerPool(reactor, max_threads=POOL_THREADS))
    parts.setName("machine-threads")
    filesystems = FilesystemsService(reactor, parts.pool)
    filesystems.setServiceParent(parts)
    parts.sections.append(filesystems.section)
    if config.process_interval > 0:
        processes = ProcessesService(reactor, parts.pool, config.process_interval)
        processes.setServiceParent(parts)
        parts.sections.append(processes.section)
    else:
        parts.sections.append(processes_off)
    return parts
