"""Which alert changes become which messages for which notifier, and the reminders.

Told of every change by the rules: a change into C{firing} and one from
C{firing} back to C{ok} make a message for every notifier whose
C{min-severity} the alert meets; C{pending} and its way back to C{ok} make
none.  While an alert fires, a notifier with C{repeat} gets a reminder every
C{repeat} seconds, timed on the reactor's clock and cancelled when the
alert resolves.  The rules' own reminders (C{reminder=True}) are ignored:
each notifier keeps its own pace.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from pistatsd.alerts.events import AlertChange
from pistatsd.notify.messages import Message, message_for, reminder_of
from pistatsd.notify.settings import NotifierSettings

_log = Logger()


class Route:
    """One notifier as the router sees it: what it wants, and where messages go."""

    def __init__(self, settings: NotifierSettings, put: Callable[[Message], None]) -> None:
        self.settings = settings
        self.put = put


class Router:
    """The C{listener} of the notifiers: turns changes into queued messages."""

    def __init__(self, routes: Sequence[Route], clock: IReactorTime, host: str) -> None:
        self._routes = tuple(routes)
        self._clock = clock
        self._host = host
        #: (notifier, alert) -> the next reminder.
        self._reminders: dict[tuple[str, str], IDelayedCall] = {}

    @property
    def reminders(self) -> int:
        """Reminders scheduled now (one per firing alert and notifier with C{repeat})."""
        return len(self._reminders)

    def __call__(self, change: AlertChange) -> None:
        """Queue what C{change} means for each notifier; never raises (the rules call it)."""
        try:
            self._route(change)
        except Exception:
            _log.failure("notifications for {alert} failed", alert=change.name)

    def _route(self, change: AlertChange) -> None:
        if change.reminder:
            return
        message = message_for(change, self._host)
        if message is None:
            return
        for route in self._routes:
            if not route.settings.wants(message.severity):
                continue
            key = (route.settings.name, message.alert)
            self._cancel(key)
            route.put(message)
            if message.event == "firing" and route.settings.repeat > 0:
                self._schedule(key, route, message)

    def _schedule(self, key: tuple[str, str], route: Route, fired: Message) -> None:
        def remind() -> None:
            del self._reminders[key]
            route.put(reminder_of(fired))
            self._schedule(key, route, fired)

        self._reminders[key] = self._clock.callLater(route.settings.repeat, remind)

    def _cancel(self, key: tuple[str, str]) -> None:
        call = self._reminders.pop(key, None)
        if call is not None:
            call.cancel()

    def stop(self) -> None:
        """Cancel every reminder (at shutdown)."""
        for key in list(self._reminders):
            self._cancel(key)
