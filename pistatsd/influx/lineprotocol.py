"""InfluxDB line protocol: escaping, one immutable L{Point}, and a validity check.

Names and values come from users (sensor names, the host name) and from the
network (route templates), so every part of a line is escaped for the place
where it appears; an unescaped comma or space would not just garble one
point, it would make InfluxDB reject the whole batch it travels in.

Lines are rendered once, when a point is queued, and travel as text from
then on (queue, spool file, request body): a rendered line is what the spool
keeps, so it must stay readable by L{is_valid_line} and by C{influx -import}.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from attrs import frozen

FieldValue = float | int | bool | str
"""What a field may hold: float, integer (written with C{i}), boolean or string."""

PRECISION = "ms"
"""The timestamp precision of every line pistatsd writes (and spools), passed
explicitly with each write so InfluxDB never has to guess it."""

_MEASUREMENT_SPECIALS = re.compile(r"[, ]")
_KEY_SPECIALS = re.compile(r"[,= ]")
# A backslash right before a character we escape (or at the very end) would
# pair with the escape (or with the separator that follows) and change how the
# rest of the line is split: double it so the line always splits the same way.
_MEASUREMENT_LONE_BACKSLASH = re.compile(r"\\(?=[, ]|$)")
_KEY_LONE_BACKSLASH = re.compile(r"\\(?=[,= ]|$)")
_NEWLINES = str.maketrans({"\n": "\\n", "\r": "\\r"})


@lru_cache(maxsize=4096)
def escape_measurement(name: str) -> str:
    """A measurement name: commas and spaces escaped (and newlines, which would end the line).

    Cached, like L{escape_key}: the names pistatsd writes are a small,
    bounded set, and escaping runs for every point of every report.
    """
    name = _MEASUREMENT_LONE_BACKSLASH.sub(r"\\\\", name.translate(_NEWLINES))
    return _MEASUREMENT_SPECIALS.sub(r"\\\g<0>", name)


@lru_cache(maxsize=4096)
def escape_key(text: str) -> str:
    """A tag key, tag value or field key: commas, equals signs and spaces escaped.

    Cached: keys and tag values (field names, host, route templates, sensor
    names) repeat every interval.
    """
    text = _KEY_LONE_BACKSLASH.sub(r"\\\\", text.translate(_NEWLINES))
    return _KEY_SPECIALS.sub(r"\\\g<0>", text)


def escape_string_field(value: str) -> str:
    """A string field value, quoted: backslashes and double quotes escaped."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').translate(_NEWLINES)
    return f'"{escaped}"'


def format_field_value(value: FieldValue) -> str | None:
    """A field value as line protocol, or None when InfluxDB cannot store it (NaN, inf).

    Booleans are checked before integers (C{True} is an C{int} in Python);
    integers get their C{i} suffix so the field's type never flips between
    float and integer from one write to the next (a type conflict would make
    InfluxDB reject the batch).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return escape_string_field(value)
    raise TypeError(f"unsupported field value type {type(value).__name__}")


@frozen
class Point:
    """One measurement at one moment: tags (in the order given) and fields.

    Tags keep their order so that lines read exactly as documented
    (C{requests,request=GETs_per_minute,host=H}); InfluxDB sorts them itself.
    Build points with L{Point.of}, which leaves out what InfluxDB cannot take
    (null or non-finite fields, empty tag values).
    """

    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, FieldValue], ...]
    timestamp: int
    """In units of L{PRECISION} since the epoch."""

    @classmethod
    def of(
        cls,
        measurement: str,
        tags: Mapping[str, str | None] | Iterable[tuple[str, str | None]],
        fields: Mapping[str, FieldValue | None] | Iterable[tuple[str, FieldValue | None]],
        timestamp: int,
    ) -> Point | None:
        """A point without its unusable parts, or None when no field is left.

        Null fields (a temperature on a machine without sensors, the CPU while
        warming up) and non-finite floats are omitted rather than written as
        zero; a tag with an empty value is omitted (InfluxDB refuses those).
        """
        tag_items = tags.items() if isinstance(tags, Mapping) else tags
        field_items = fields.items() if isinstance(fields, Mapping) else fields
        kept_tags = tuple((k, v) for k, v in tag_items if v)
        kept_fields = tuple(
            (k, v) for k, v in field_items if v is not None and format_field_value(v) is not None
        )
        if not kept_fields:
            return None
        return cls(measurement, kept_tags, kept_fields, int(timestamp))

    def line(self) -> str:
        """The point as one line of line protocol, without the newline."""
        head = escape_measurement(self.measurement)
        if self.tags:
            head += "," + ",".join(f"{escape_key(k)}={escape_key(v)}" for k, v in self.tags)
        body = ",".join(f"{escape_key(k)}={format_field_value(v)}" for k, v in self.fields)
        return f"{head} {body} {self.timestamp}"


def timestamp_of(seconds: float) -> int:
    """Epoch seconds (the reactor's clock) in L{PRECISION} units."""
    return round(seconds * 1000)


# Runs of ordinary characters are taken whole, and possessively: the
# expression never backtracks, so a line is checked in one pass.
_ESCAPED = r"\\."
_MEASUREMENT = rf"(?:[^,\s\\#]|{_ESCAPED})(?:[^,\s\\]++|{_ESCAPED})*+"
_KEY = rf"(?:[^,=\s\\]++|{_ESCAPED})++"
_STRING = r'"(?:[^"\\]++|\\.)*+"'
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_VALUE = rf"(?:{_STRING}|[-+]?\d+[iu]|{_NUMBER}|[tT](?:rue)?|TRUE|[fF](?:alse)?|FALSE)"
_LINE = re.compile(
    rf"{_MEASUREMENT}(?:,{_KEY}={_KEY})* {_KEY}={_VALUE}(?:,{_KEY}={_VALUE})* -?\d{{1,19}}"
)


def is_valid_line(line: str) -> bool:
    """Whether C{line} is one well-formed line of line protocol with a timestamp.

    Used on spool replay: a line torn by a crash or damaged on the card is
    skipped (and counted) instead of making InfluxDB reject the batch it
    would travel in.  One compiled regular expression with disjoint
    alternatives, so checking a 16 MiB spool is linear and fast.
    """
    return _LINE.fullmatch(line) is not None
