"""Strict number syntax for text that people type: query arguments and the client's arguments.

Python's C{float()} and C{int()} accept far more than a person means by a
number: underscores between digits (C{1_0} is ten), surrounding whitespace,
digits of any script (C{٣}), C{inf} and C{nan}.  A query argument that
C{float()} reads as ten when it was not written as ten is a bug, so these
grammars accept only ASCII digits, without whitespace:

 - L{plain_decimal}: C{12}, C{0.5} (no sign, no exponent): durations and
   counts such as C{?interval=}, C{?seconds=};
 - L{finite_float}: an optional sign, digits with an optional fraction
   (C{5.}, C{.5} too) and an optional exponent (C{1e3}, C{-2.5E-3}): what C,
   JavaScript and JSON users write, and what Python's C{repr} of a float
   gives.  Used by C{/sum}, whose values are "anything that is a number".
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

_PLAIN_DECIMAL = re.compile(rb"[0-9]+(?:\.[0-9]+)?")
_FLOAT = re.compile(rb"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(rb"[+-]?[0-9]+")
# Bound once: /sum parses every query argument of every request with these.
_float_syntax = _FLOAT.fullmatch
_isfinite = math.isfinite


def _ascii(text: bytes | str) -> bytes | None:
    if isinstance(text, bytes):
        return text
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        return None


def plain_decimal(text: bytes | str) -> float | None:
    """C{text} as a float if it is written C{123} or C{123.45}, else None (also when too big)."""
    raw = _ascii(text)
    if raw is None or _PLAIN_DECIMAL.fullmatch(raw) is None:
        return None
    number = float(raw)
    return number if math.isfinite(number) else None


def decimal_float(text: bytes | str) -> float | None:
    """C{text} as a float if it is a decimal number with an optional exponent, else None.

    The value may be infinite (C{1e999}): the syntax is right, the size is not.
    """
    # Query arguments are bytes already: no call to _ascii for them.
    raw = text if isinstance(text, bytes) else _ascii(text)
    if raw is None or _float_syntax(raw) is None:
        return None
    return float(raw)


def finite_float(text: bytes | str) -> float | None:
    """C{text} as a float if it is a decimal number (L{decimal_float}) with a finite value."""
    number = decimal_float(text)
    return number if number is not None and _isfinite(number) else None


def integer(text: bytes | str) -> int | None:
    """C{text} as an int if it is ASCII digits with an optional sign, else None."""
    raw = _ascii(text)
    if raw is None or _INTEGER.fullmatch(raw) is None:
        return None
    try:
        return int(raw)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        return None


def plain(value: float) -> str:
    """C{value} written as L{plain_decimal} reads it: C{1e-05} becomes C{0.00001}.

    The shortest digits that read back as C{value} (Python's C{repr}), without
    an exponent and without a needless C{.0}.
    """
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{value!r} has no plain decimal form")
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
