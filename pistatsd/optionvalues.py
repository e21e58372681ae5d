"""What one option value may be: the parsers the option table of L{pistatsd.config} names.

Each takes the raw value (a command-line string, or what the TOML file holds)
and returns the typed value or raises C{ValueError} with the reason; the
table adds the option's name to the message.
"""

from __future__ import annotations

import math

from pistatsd.numbers import decimal_float, integer


def _parse_float(text: object) -> float:
    """A number: a TOML float or integer, or text written as people write numbers.

    Text goes through L{pistatsd.numbers} (ASCII digits, an optional sign,
    fraction and exponent): C{float()} would read C{1_0} as ten, C{" 5"} as
    five and C{inf} as a number.
    """
    if isinstance(text, bool):
        raise ValueError("not a number")
    if isinstance(text, int | float):
        value = float(text)
    elif isinstance(text, str):
        parsed = decimal_float(text)
        if parsed is None:
            raise ValueError("not a decimal number")
        value = parsed
    else:
        raise ValueError("not a number")
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _parse_int(text: object) -> int:
    """A whole number: a TOML integer (or integral float), or text of ASCII digits."""
    if isinstance(text, bool):
        raise ValueError("not an integer")
    if isinstance(text, float):
        if not text.is_integer():
            raise ValueError("not an integer")
        return int(text)
    if isinstance(text, int):
        return text
    parsed = integer(text) if isinstance(text, str) else None
    if parsed is None:
        raise ValueError("not an integer")
    return parsed


def _parse_process_interval(text: object) -> float:
    """0 (off), or at least a second: a scan costs milliseconds, more often buys nothing."""
    value = _parse_float(text)
    if 0 < value < 1:
        raise ValueError("0 turns scanning off; otherwise at least 1")
    return value


def _parse_str(text: object) -> str:
    if not isinstance(text, str):
        raise ValueError("not a string")
    if not text:
        raise ValueError("must not be empty")
    return text


def _parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError("not true or false")


def _parse_url(text: object) -> str:
    url = _parse_str(text).rstrip("/")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https") or not rest:
        raise ValueError("expected an http:// or https:// URL")
    return url


def _parse_host(text: object) -> str:
    from pistatsd.web.hosts import allowed_host_entry

    try:
        return allowed_host_entry(_parse_str(text))
    except ValueError:
        raise ValueError("expected a name or address, .domain for it and below, or *") from None


def _parse_mqtt_url(text: object) -> str:
    from pistatsd.mqtt.settings import parse_broker_url

    url = _parse_str(text)
    parse_broker_url(url)
    return url


def _parse_topic_prefix(text: object) -> str:
    from pistatsd.mqtt.settings import check_topic_prefix

    if not isinstance(text, str):
        raise ValueError("not a string")
    return check_topic_prefix(text)


def _parse_discovery_prefix(text: object) -> str:
    """A topic prefix, or the empty string: Home Assistant discovery off."""
    if text == "":
        return ""
    return _parse_topic_prefix(text)
