"""Turning the daemon's JSON into lines a person reads in a terminal."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from pistatsd.client.summary import format_screen
from pistatsd.jsontypes import JSONMapping


def _number(value: object) -> float | None:
    """C{value} if it is a real JSON number; None for null, missing or odd values.

    The daemon reports unknown readings as null (no sensor, CPU warming up), so
    every field the formatter shows must survive being absent.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _field(document: JSONMapping, *keys: str) -> object:
    """C{document[k1][k2]...}, or None as soon as a level is missing or not an object."""
    value: object = document
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _percent(value: object) -> str:
    number = _number(value)
    return "-" if number is None else f"{number:.1f}%"


def _celsius(value: object) -> str:
    number = _number(value)
    return "-" if number is None else f"{number:.1f}°C"


def _load(value: object) -> str:
    if not isinstance(value, list | tuple) or not value:
        return "-"
    numbers = [_number(item) for item in value]
    return " ".join("-" if n is None else f"{n:.2f}" for n in numbers)


def _clock(value: object) -> str:
    number = _number(value)
    if number is None:
        return "--:--:--"
    return time.strftime("%H:%M:%S", time.localtime(number))


def format_tick(message: JSONMapping) -> str:
    """One broadcast tick as one line, e.g.
    C{12:00:01  cpu  12.5%  mem 37.2%  temp 48.3°C  load 0.10 0.20 0.30}.

    Fixed-width columns keep successive ticks aligned so changes are easy to
    spot; any missing or null reading shows as C{-} instead of failing.
    """
    clock = _clock(message.get("sent", message.get("timestamp")))
    cpu = _percent(_field(message, "cpu", "percent"))
    memory = _percent(_field(message, "memory", "percent"))
    temperature = _celsius(_field(message, "temperature", "celsius"))
    load = _load(_field(message, "cpu", "load"))
    return f"{clock}  cpu {cpu:>6}  mem {memory:>5}  temp {temperature:>6}  load {load}"


def format_summary(snapshot: JSONMapping) -> str:
    """A C{/stats} snapshot as one terminal screen (L{pistatsd.client.summary})."""
    return format_screen(snapshot)


def format_json(document: object) -> str:
    """Pretty JSON for people: indented, non-ASCII kept (°C, host names) rather than escaped."""
    return json.dumps(document, indent=2, ensure_ascii=False)
