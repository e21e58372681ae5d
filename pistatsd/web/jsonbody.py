"""Request bodies that must be one JSON object: strict decoding with messages people can act on."""

from __future__ import annotations

import json

from pistatsd.jsontypes import JSONObject


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


#: One strict decoder for every request (C{NaN} and C{Infinity} refused);
#: C{json.loads} with options would build a new decoder on each call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def is_json_content_type(header: bytes | None) -> bool:
    """Whether a C{Content-Type} says JSON: C{application/json}, any letter case,
    parameters such as C{charset} allowed.

    Bodies of any other type are refused without being looked at: a form a
    browser posts cross-site must never be read as JSON.
    """
    if not header:
        return False
    return header.split(b";", 1)[0].strip().lower() == b"application/json"


def decode_json_object(body: bytes, example: str = '{"a": 1, "b": 2}') -> JSONObject:
    """The JSON object in C{body}; C{ValueError} with a clear message otherwise.

    @param example: shown in the message when the body is JSON but not an object.
    """
    if not body.strip():
        raise ValueError(f"the request body is empty: expected a JSON object, e.g. {example}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the request body is not UTF-8") from None
    try:
        document = _DECODER.decode(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise ValueError("malformed JSON: nested too deeply") from None
    except ValueError as e:  # NaN/Infinity tokens, integers with too many digits
        raise ValueError(f"malformed JSON: {e}") from None
    if not isinstance(document, dict):
        raise ValueError(f"the body must be a JSON object, e.g. {example}")
    return document
