"""systemd integration: readiness and watchdog notifications (to be implemented)."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service


def systemd_service(reactor: Any) -> Service | None:
    """A service that notifies systemd, or None when not running under systemd."""
    return None
