"""The notifiers as one service: started with the daemon, stopped cleanly with it.

Stopping cancels the reminders, the retry timers and the attempts in
progress, and closes the HTTP connection pools, so twistd exits promptly
even with a notifier that hangs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger

from pistatsd.notify.delivery import Delivery
from pistatsd.notify.messages import probe_message
from pistatsd.notify.router import Router

_log = Logger()


class NotifyService(Service):
    """Owns the deliveries' lifecycles and the router's reminders."""

    name = "notify"

    def __init__(
        self,
        deliveries: Sequence[Delivery],
        router: Router,
        wall: Callable[[], float],
        host: str,
    ) -> None:
        self.deliveries = tuple(deliveries)
        self.router = router
        self._wall = wall
        self._host = host

    def startService(self) -> None:
        super().startService()
        _log.info(
            "notifications: {notifiers}",
            notifiers=", ".join(f"{d.name} ({d.kind} {d.target})" for d in self.deliveries),
        )
        for delivery in self.deliveries:
            delivery.start()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self.router.stop()
        stopped = DeferredList(
            [delivery.stop() for delivery in self.deliveries], consumeErrors=True
        )
        return stopped.addCallback(lambda _: None)

    def send_test(self) -> Deferred[Mapping[str, str]]:
        """One test message through every notifier, once: C{{name: "sent" or the error}}."""
        message = probe_message(self._host, self._wall())
        attempts = [delivery.send_once(message) for delivery in self.deliveries]
        names = [delivery.name for delivery in self.deliveries]

        def collected(results: list[tuple[bool, str]]) -> Mapping[str, str]:
            said = {
                name: str(value) if ok else "failed"
                for name, (ok, value) in zip(names, results, strict=True)
            }
            for name, text in said.items():
                _log.info(
                    "test notification through {notifier}: {result}", notifier=name, result=text
                )
            return said

        return DeferredList(attempts, consumeErrors=True).addCallback(collected)

    def health(self) -> Mapping[str, object]:
        """C{/health}'s C{"notify"}: every notifier's counters, no secret."""
        return {"notifiers": {delivery.name: delivery.state() for delivery in self.deliveries}}
