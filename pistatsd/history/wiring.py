"""How the composition root builds the history: options to service, sampler to store."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, cast

from attrs import frozen
from twisted.application.service import IService, MultiService, Service
from twisted.internet.interfaces import IReactorFromThreads, IReactorTime
from twisted.internet.task import LoopingCall

from pistatsd.config import Config
from pistatsd.history.metrics import HistoryCollector
from pistatsd.history.service import HistoryService
from pistatsd.history.threads import DatabaseThread
from pistatsd.sampler import Sampler
from pistatsd.status import history_off

FILENAME = "history.sqlite3"
OFF = "none"


def history_path(config: Config) -> str | None:
    """The database file the options name, or C{None} when the history is off."""
    if config.history_db is None:
        return os.path.join(config.state_dir, FILENAME)
    if config.history_db.lower() == OFF:
        return None
    return config.history_db


class SnapshotFeed(Service):
    """Hands each new snapshot to C{record}, checking once per sampler interval.

    The sampler has no subscribers: it keeps the latest snapshot, so the feed
    reads it on the sampler's period and skips a snapshot it has seen
    (same C{timestamp}).
    """

    def __init__(
        self,
        latest: Callable[[], Mapping[str, Any]],
        record: Callable[[Mapping[str, Any]], None],
        interval: float,
        clock: IReactorTime,
    ) -> None:
        self._latest = latest
        self._record = record
        self._interval = interval
        self._clock = clock
        self._seen: object = None
        self._loop: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self.poll)
        self._loop.clock = self._clock
        self._loop.start(self._interval, now=True)

    def stopService(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        super().stopService()

    def poll(self) -> None:
        try:
            snapshot = self._latest()
        except RuntimeError:  # nothing sampled yet
            return
        stamp = snapshot.get("timestamp")
        if stamp is not None and stamp != self._seen:
            self._seen = stamp
            self._record(snapshot)


def history_service(
    config: Config, reactor: Any, latest: Callable[[], Mapping[str, Any]]
) -> tuple[MultiService, HistoryService] | None:
    """The history and its feed from the sampler, or C{None} with C{--history-db none}.

    Also C{None} on a reactor without threads (the in-memory fakes of tests):
    the store works only on its own thread.

    The returned C{MultiService} stops the feed before the store, so the last
    flush at shutdown has every snapshot.
    """
    path = history_path(config)
    if path is None or not IReactorFromThreads.providedBy(reactor):
        return None
    clock = cast(IReactorTime, reactor)
    store = HistoryService(
        path,
        clock=clock,
        worker=DatabaseThread(reactor),
        flush_interval=config.history_flush,
        max_bytes=config.history_max_mb << 20,
    )
    store.setName("history")
    parent = MultiService()
    store.setServiceParent(parent)
    SnapshotFeed(latest, store.record, config.sample_interval, clock).setServiceParent(parent)
    return parent, store


@frozen
class HistoryParts:
    """The history, ready to compose: nothing but the "off" health while it is off.

    @ivar services: the store and its feed from the sampler, when the history is on.
    @ivar health: C{/health}'s C{"history"} (the store's state, or the off shape).
    @ivar metrics: the C{pistatsd_history_*} collector, when the history is on.
    @ivar reader: what C{/stats/series} reads, or C{None} (the ring only).
    """

    services: tuple[IService, ...]
    health: Callable[[], Mapping[str, object]]
    metrics: tuple[HistoryCollector, ...]
    reader: HistoryService | None


def history_parts(config: Config, reactor: Any, sampler: Sampler) -> HistoryParts:
    """Everything the composition root needs of the history, on or off."""
    built = history_service(config, reactor, lambda: sampler.latest)
    if built is None:
        return HistoryParts(services=(), health=history_off, metrics=(), reader=None)
    parent, store = built
    return HistoryParts(
        services=(parent,),
        health=store.state,
        metrics=(HistoryCollector(store.state),),
        reader=store,
    )
