"""How the composition root builds the history: options to service, sampler to store."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, cast

from attrs import frozen
from twisted.application.service import IService
from twisted.internet.interfaces import IReactorFromThreads, IReactorTime

from pistatsd.config import Config
from pistatsd.history.metrics import HistoryCollector
from pistatsd.history.service import HistoryService
from pistatsd.history.threads import DatabaseThread
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


def history_service(config: Config, reactor: Any) -> HistoryService | None:
    """The history store, or C{None} with C{--history-db none}.

    Also C{None} on a reactor without threads (the in-memory fakes of tests):
    the store works only on its own thread.

    The sampler tells it of each snapshot (L{HistoryParts.observers}); it
    starts before the sampler, so it stops after it and its last flush at
    shutdown has every snapshot.
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
    return store


@frozen
class HistoryParts:
    """The history, ready to compose: nothing but the "off" health while it is off.

    @ivar services: the store, when the history is on.
    @ivar observers: what the sampler tells of each new snapshot.
    @ivar health: C{/health}'s C{"history"} (the store's state, or the off shape).
    @ivar metrics: the C{pistatsd_history_*} collector, when the history is on.
    @ivar reader: what C{/stats/series} reads, or C{None} (the ring only).
    """

    services: tuple[IService, ...]
    observers: tuple[Callable[[Mapping[str, Any]], None], ...]
    health: Callable[[], Mapping[str, object]]
    metrics: tuple[HistoryCollector, ...]
    reader: HistoryService | None


def history_parts(config: Config, reactor: Any) -> HistoryParts:
    """Everything the composition root needs of the history, on or off."""
    store = history_service(config, reactor)
    if store is None:
        return HistoryParts(services=(), observers=(), health=history_off, metrics=(), reader=None)
    return HistoryParts(
        services=(store,),
        observers=(store.record,),
        health=store.state,
        metrics=(HistoryCollector(store.state),),
        reader=store,
    )
