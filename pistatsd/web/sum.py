"""C{/sum}: the math server.  Adds numbers from the query string or a JSON object body."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from itertools import chain
from typing import TypeVar

from twisted.web.server import Request

from pistatsd.numbers import finite_float
from pistatsd.web.jsonbody import decode_json_object, is_json_content_type
from pistatsd.web.negotiation import preferred
from pistatsd.web.responses import JSONResource, json_body, text_body

CONTENT_TYPE_MESSAGE = 'Please, ensure the content type of your request is "application/json".'

_OFFERS = ("text/plain", "application/json")
#: What JSON numbers decode to (a tuple: C{int | float} builds a union object at each use).
_NUMBER_TYPES = (int, float)

_V = TypeVar("_V")


def finite_number(value: object) -> float | None:
    """C{value} as a finite float if it is a JSON number, else None.

    Booleans are not numbers here, whatever Python thinks; nor is numeric text.
    """
    if isinstance(value, bool) or not isinstance(value, _NUMBER_TYPES):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range
        return None
    return number if math.isfinite(number) else None


def add(values: Iterable[_V], number: Callable[[_V], float | None]) -> float:
    """The sum of the values that are numbers: C{number} reads one, None when it is not."""
    total = 0.0
    for value in values:
        parsed = number(value)
        if parsed is not None:
            total += parsed
    return total


def format_total(total: float) -> str:
    """Integer digits for integral totals below 1e15, else Python's float repr."""
    if math.isfinite(total) and total.is_integer() and abs(total) < 1e15:
        return str(int(total))
    return repr(total)


class SumResource(JSONResource):
    """GET adds the query arguments; POST adds the values of a JSON object."""

    isLeaf = True
    allowedMethods = (b"GET", b"HEAD", b"POST")

    def _answer(self, request: Request, total: float) -> bytes:
        if not math.isfinite(total):
            return self._error(request, "the sum is too large to represent")
        if preferred(request.getHeader(b"accept"), _OFFERS) == "application/json":
            exact = total.is_integer() and abs(total) < 1e15
            return json_body(request, {"sum": int(total) if exact else total})
        return text_body(request, "Sum: " + format_total(total))

    def _error(self, request: Request, message: str, code: int = 400) -> bytes:
        if preferred(request.getHeader(b"accept"), _OFFERS) == "application/json":
            return json_body(request, {"error": message}, code)
        return text_body(request, message, code)

    def render_GET(self, request: Request) -> bytes:
        """The sum of the query arguments that are numbers as people write them.

        C{-2}, C{1.5}, C{1e3}; not what only Python reads as one (C{1_0},
        C{" 1"}, non-ASCII digits): see L{pistatsd.numbers}.
        """
        return self._answer(request, add(chain.from_iterable(request.args.values()), finite_float))

    def render_POST(self, request: Request) -> bytes:
        if not is_json_content_type(request.getHeader(b"content-type")):
            return text_body(request, CONTENT_TYPE_MESSAGE, 400)
        assert request.content is not None  # the channel gives every request a body first
        try:
            document = decode_json_object(request.content.read())
        except ValueError as e:
            return self._error(request, str(e))
        return self._answer(request, add(document.values(), finite_number))
