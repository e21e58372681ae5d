"""Series names: every number of a snapshot worth keeping, by a stable dotted name.

PLACEHOLDER, to be replaced by the store's own module (same signature): it
covers only CPU, memory, swap, temperature and load.
"""

from __future__ import annotations

from collections.abc import Mapping


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def flatten(snapshot: Mapping[str, object]) -> dict[str, float]:
    """The numbers of C{snapshot} by series name (C{cpu.percent}, C{load.1}, ...); nulls skipped."""
    flat: dict[str, float] = {}

    def put(name: str, value: object) -> None:
        number = _number(value)
        if number is not None:
            flat[name] = number

    for part in ("cpu", "memory", "swap", "temperature"):
        section = snapshot.get(part)
        if isinstance(section, Mapping):
            field = "celsius" if part == "temperature" else "percent"
            put(f"{part}.{field}", section.get(field))
    cpu = snapshot.get("cpu")
    load = cpu.get("load") if isinstance(cpu, Mapping) else None
    if isinstance(load, list) and len(load) == 3:
        for minutes, value in zip((1, 5, 15), load, strict=True):
            put(f"load.{minutes}", value)
    return flat
