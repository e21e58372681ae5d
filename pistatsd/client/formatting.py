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


# -- history (GET /stats/series) ----------------------------------------------

SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[object]) -> str:
    """One character per point, scaled between the lowest and highest; a gap is a space."""
    numbers = [_number(v) for v in values]
    present = [n for n in numbers if n is not None]
    if not present:
        return " " * len(numbers)
    low, high = min(present), max(present)
    span = high - low
    top = len(SPARKS) - 1
    return "".join(
        " " if n is None else SPARKS[0 if span == 0 else round((n - low) / span * top)]
        for n in numbers
    )


def _reading(value: float | None) -> str:
    """A value short enough for a column: C{12.5}, C{1.23e+09}, C{-} for none."""
    if value is None:
        return "-"
    return f"{value:.1f}" if abs(value) < 1e5 else f"{value:.3g}"


def series_summary(series: JSONMapping) -> tuple[float | None, float | None, float | None]:
    """The lowest minimum, the mean of the means and the highest maximum of one series."""
    lows = [n for n in map(_number, series.get("min") or []) if n is not None]
    means = [n for n in map(_number, series.get("avg") or []) if n is not None]
    highs = [n for n in map(_number, series.get("max") or []) if n is not None]
    return (
        min(lows) if lows else None,
        sum(means) / len(means) if means else None,
        max(highs) if highs else None,
    )


def _when(epoch: float, long: bool) -> str:
    return time.strftime("%Y-%m-%d %H:%M" if long else "%H:%M:%S", time.localtime(epoch))


def _range_line(document: JSONMapping) -> str:
    start = _number(document.get("from")) or 0.0
    end = _number(document.get("to")) or 0.0
    step = _number(document.get("step")) or 0.0
    return f"from {_when(start, True)} to {_when(end, True)}, {step:g} s per point"


def format_sparklines(document: JSONMapping, names: list[str]) -> list[str]:
    """A C{/stats/series} answer as a range line, then one sparkline line per series."""
    values = document.get("values") or {}
    width = max((len(name) for name in names), default=0)
    lines = [_range_line(document)]
    for name in names:
        series = values.get(name) or {}
        low, mean, high = series_summary(series)
        line = sparkline(list(series.get("avg") or []))
        lines.append(
            f"{name:<{width}}  {line}  "
            f"min {_reading(low)}  avg {_reading(mean)}  max {_reading(high)}"
        )
    return lines


def format_table(document: JSONMapping, names: list[str]) -> list[str]:
    """A C{/stats/series} answer as a table: one row per point (mean values), then
    each series' min/avg/max."""
    values = document.get("values") or {}
    times = [n for n in map(_number, document.get("t") or []) if n is not None]
    long = bool(times) and times[-1] - times[0] >= 86400
    stamp = len(_when(0, long))
    widths = [max(len(name), 7) for name in names]
    header = "time".ljust(stamp) + "".join(
        f"  {name:>{w}}" for name, w in zip(names, widths, strict=True)
    )
    lines = [_range_line(document), header]
    for i, when in enumerate(times):
        cells = []
        for name, w in zip(names, widths, strict=True):
            avg = (values.get(name) or {}).get("avg") or []
            cells.append(f"  {_reading(_number(avg[i]) if i < len(avg) else None):>{w}}")
        lines.append(_when(when, long) + "".join(cells))
    for label, pick in (("min", 0), ("avg", 1), ("max", 2)):
        cells = [
            f"  {_reading(series_summary(values.get(name) or {})[pick]):>{w}}"
            for name, w in zip(names, widths, strict=True)
        ]
        lines.append(label.ljust(stamp) + "".join(cells))
    return lines
