"""The one type of JSON documents (snapshots, sensor definitions, /health, request bodies).

A JSON value is a tree of C{dict}, C{list}, C{str}, C{int}, C{float}, C{bool}
and C{None}; its shape is checked where a document is read (with C{isinstance}
and clear errors), not by the type checker, so the leaves stay open here.
L{JSONValue} is the only place where pistatsd says "any" about JSON: every
JSON object in a signature is a L{JSONObject} (built or decoded, so mutable)
or a L{JSONMapping} (only read).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

#: A JSON value of any shape, as C{json.loads} gives it and C{json.dumps} takes it.
JSONValue: TypeAlias = Any

#: A JSON object being built or just decoded.
JSONObject: TypeAlias = dict[str, JSONValue]

#: A JSON object a function only reads (a snapshot, a message).
JSONMapping: TypeAlias = Mapping[str, JSONValue]
