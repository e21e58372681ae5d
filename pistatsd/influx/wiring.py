"""Builds the InfluxDB reporter from the configuration (to be implemented)."""

from __future__ import annotations

from typing import Any

from pistatsd.config import Config


def influx_service(config: Config, reactor: Any, *, tally: Any, sampler: Any, sensors: Any) -> Any:
    """The reporter service for C{--influx}."""
    raise NotImplementedError("--influx is not available yet")
