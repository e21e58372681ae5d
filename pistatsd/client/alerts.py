"""C{pistatsd-client alerts}: the daemon's alerts as a compact table, the worst first."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from pistatsd.client.failures import ClientError

#: Rows in this order: what fires, what may fire soon, what is fine.
_ORDER = {"firing": 0, "pending": 1, "ok": 2}
_SEVERITY_ORDER = {"critical": 0, "warning": 1}
#: Columns wider than this are cut (a long mount point), with an ellipsis.
MAX_NAME = 40


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def _value(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{value:.4g}"


def _since(since: object, now: float) -> str:
    """How long ago, compactly: C{45s}, C{12m}, C{3h}, C{2d}."""
    if isinstance(since, bool) or not isinstance(since, int | float):
        return "-"
    age = max(0.0, now - since)
    for unit, seconds in (("d", 86400), ("h", 3600), ("m", 60)):
        if age >= seconds:
            return f"{int(age // seconds)}{unit}"
    return f"{int(age)}s"


def format_alerts(document: object, now: float | None = None) -> list[str]:
    """The lines to print for a C{/api/alerts} answer.

    @raise ClientError: for an answer that is not an alerts document.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("alerts"), list):
        raise ClientError("the answer is not an alerts answer")
    when = time.time() if now is None else now
    rows: list[Sequence[str]] = []
    alerts = [a for a in document["alerts"] if isinstance(a, Mapping)]
    alerts.sort(
        key=lambda a: (
            _ORDER.get(str(a.get("state")), 3),
            _SEVERITY_ORDER.get(str(a.get("severity")), 2),
            str(a.get("name")),
        )
    )
    for alert in alerts:
        rows.append(
            (
                _cut(str(alert.get("name", "?")), MAX_NAME),
                str(alert.get("state", "?")),
                str(alert.get("severity", "?")),
                _value(alert.get("value")),
                _since(alert.get("since"), when),
            )
        )
    if not rows:
        return ["no alerts"]
    header = ("ALERT", "STATE", "SEVERITY", "VALUE", "SINCE")
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    firing = sum(1 for a in alerts if a.get("state") == "firing")
    pending = sum(1 for a in alerts if a.get("state") == "pending")
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    lines.append(f"{firing} firing, {pending} pending, {len(alerts)} in all")
    return lines
