"""Builds the sensors service from the configuration (to be implemented)."""

from __future__ import annotations

from typing import Any

from pistatsd.config import Config


def sensors_service(config: Config, reactor: Any) -> Any | None:
    """The sensors service (with C{.resource} and C{.snapshot_section}), or None."""
    return None
