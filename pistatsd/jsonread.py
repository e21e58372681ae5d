"""Reading decoded JSON defensively: a number, an object or a list, or an empty stand-in.

Snapshots come with optional parts (null in the first sample, absent off a
Raspberry Pi, an error on a hung mount); the outputs that read them (metrics,
InfluxDB points, the client's screen) need the same three questions answered
the same way, so they share these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pistatsd.jsontypes import JSONMapping, JSONValue


def number(value: object) -> float | None:
    """A JSON number as a float; None for null, booleans, strings or anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def mapping(value: object) -> JSONMapping:
    """A JSON object, or an empty one for anything else."""
    return value if isinstance(value, Mapping) else {}


def sequence(value: object) -> Sequence[JSONValue]:
    """A JSON array, or an empty one for anything else."""
    return value if isinstance(value, list | tuple) else ()
