"""Names from the machine made safe to encode as UTF-8, for every output that must.

The kernel hands out names as bytes (mount points, interface and process
names); Python decodes the invalid ones with lone surrogates
(C{/mnt/caf\\udce9}), which JSON tolerates but UTF-8 cannot encode: one
such name would make a whole Prometheus scrape or InfluxDB batch fail.
"""

from __future__ import annotations


def utf8_safe(value: object) -> str:
    """C{value} as text that encodes as UTF-8: undecodable bytes become visible
    escapes (C{/mnt/caf\\\\udce9}); None becomes the empty string."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
