"""The C{[alerts.NAME]} tables of the TOML file, checked once at start-up into L{Rule}s.

Every problem stops start-up with one line naming the table and the key
(C{--config: [alerts.hot] above: must be a number, not "x"}): unknown keys,
both or neither of C{above} and C{below}, a C{clear} on the wrong side of
the threshold, a bad series name or pattern, too many rules.  A table named
like a built-in rule (L{pistatsd.alerts.builtin}) changes that rule.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping

from pistatsd.alerts.builtin import BUILTINS, BUILTINS_BY_NAME, Builtin
from pistatsd.alerts.events import SEVERITIES, Severity
from pistatsd.alerts.rules import (
    KNOWN_PARTS,
    Condition,
    PatternReader,
    Reader,
    Rule,
    SeriesReader,
    Threshold,
)
from pistatsd.errors import StartupError

#: Rule tables at most (built-in overrides included): each costs every sample.
MAX_RULES = 100
#: The longest C{for}: a week.
MAX_HOLD = 7 * 86400.0
MAX_SERIES_LENGTH = 200
KEYS = frozenset({"series", "above", "below", "for", "clear", "severity", "enabled"})
#: What a table of a built-in with its own reader or condition may change.
SPECIAL_KEYS = frozenset({"for", "severity", "enabled"})
_THRESHOLD_KEYS = ("above", "below", "clear")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _shown(value: object) -> str:
    """A TOML value as the user wrote it, near enough: C{"x"}, C{[1, 2]}, C{true}."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)[:80]
    except ValueError:
        return repr(value)[:80]


def _fail(name: str, key: str | None, message: str) -> StartupError:
    where = f"[alerts.{name}]" if key is None else f"[alerts.{name}] {key}"
    return StartupError(f"--config: {where}: {message}")


def _number(name: str, table: Mapping[str, object], key: str) -> float | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(name, key, f"must be a number, not {_shown(value)}")
    return float(value)


def check_series(name: str, series: object) -> bool:
    """Check a rule's C{series}; True when it is a pattern (one C{*}).

    @raise StartupError: naming the table, for anything that no snapshot
        could ever match.
    """
    if not isinstance(series, str) or not series:
        raise _fail(name, "series", f"must be a series name, not {_shown(series)}")
    if len(series) > MAX_SERIES_LENGTH:
        raise _fail(name, "series", f"is longer than {MAX_SERIES_LENGTH} characters")
    if not series.isprintable():
        raise _fail(name, "series", f"has unprintable characters: {_shown(series)}")
    stars = series.count("*")
    if stars > 1:
        raise _fail(name, "series", f"a pattern has one * only, not {stars}: {_shown(series)}")
    part, dot, rest = series.partition(".")
    if not dot or not rest:
        raise _fail(name, "series", f"not a series name (part.field): {_shown(series)}")
    if part not in KNOWN_PARTS:
        known = ", ".join(sorted(KNOWN_PARTS))
        raise _fail(name, "series", f"unknown part {_shown(part)} (one of {known})")
    return stars == 1


def _table(name: str, table: object) -> Mapping[str, object]:
    if not _NAME.fullmatch(name):
        raise StartupError(
            f"--config: [alerts.{name}]: a rule name is 1 to 64 letters, digits, - and _"
        )
    if not isinstance(table, Mapping):
        raise _fail(name, None, f"must be a table, not {_shown(table)}")
    unknown = sorted(set(table) - KEYS)
    if unknown:
        raise _fail(name, unknown[0], f"unknown key (known: {', '.join(sorted(KEYS))})")
    return table


def _merged(builtin: Builtin, table: Mapping[str, object]) -> dict[str, object]:
    """A built-in's keys with a table's changes: a new threshold replaces the old one."""
    if builtin.special:
        refused = sorted(set(table) - SPECIAL_KEYS)
        if refused:
            allowed = ", ".join(sorted(SPECIAL_KEYS))
            raise _fail(
                builtin.name,
                refused[0],
                f"cannot be changed for this built-in rule ({allowed} can)",
            )
    merged = dict(builtin.table)
    if "above" in table or "below" in table:
        for key in _THRESHOLD_KEYS:
            merged.pop(key, None)
    merged.update(table)
    return merged


def _threshold(name: str, table: Mapping[str, object]) -> Threshold:
    above, below = _number(name, table, "above"), _number(name, table, "below")
    if above is not None and below is not None:
        raise _fail(name, "below", "give above or below, not both")
    if above is None and below is None:
        raise _fail(name, None, "needs above = N or below = N")
    threshold = above if above is not None else below
    assert threshold is not None
    clear = _number(name, table, "clear")
    if clear is None:
        clear = threshold
    if above is not None and clear > threshold:
        raise _fail(
            name, "clear", f"must not be above the threshold (above = {above:g}), not {clear:g}"
        )
    if below is not None and clear < threshold:
        raise _fail(
            name, "clear", f"must not be below the threshold (below = {below:g}), not {clear:g}"
        )
    return Threshold(threshold=threshold, clear=clear, above=above is not None)


def _rule(name: str, table: Mapping[str, object], builtin: Builtin | None) -> Rule | None:
    """The rule of one (merged) table, or None when it is turned off; every key checked."""
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _fail(name, "enabled", f"must be true or false, not {_shown(enabled)}")
    if "series" not in table:
        raise _fail(name, None, 'needs series = "NAME" (or a pattern with *)')
    pattern = check_series(name, table["series"])
    series = table["series"]
    assert isinstance(series, str)
    hold = _number(name, table, "for")
    if hold is None:
        hold = 0.0
    if not 0 <= hold <= MAX_HOLD:
        raise _fail(name, "for", f"must be from 0 to {MAX_HOLD:.0f} seconds, not {hold:g}")
    severity = table.get("severity", "warning")
    if severity not in SEVERITIES:
        raise _fail(name, "severity", f'must be "warning" or "critical", not {_shown(severity)}')
    condition: Condition
    if builtin is not None and builtin.condition is not None:
        condition = builtin.condition
    else:
        condition = _threshold(name, table)
    reader: Reader
    if builtin is not None and builtin.reader is not None:
        reader = builtin.reader()
    elif pattern:
        reader = PatternReader(series)
    else:
        reader = SeriesReader(series)
    if not enabled:
        return None
    checked: Severity = "critical" if severity == "critical" else "warning"
    return Rule(
        name=name,
        reader=reader,
        condition=condition,
        hold=hold,
        severity=checked,
        pattern=pattern,
    )


def parse_rules(raw: object) -> tuple[Rule, ...]:
    """The rules of a daemon: the built-ins (as changed by tables of their names), then
    the other tables in their order.

    @param raw: the TOML file's C{alerts} table (C{None} when it has none).
    @raise StartupError: one line naming the table and the key.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise StartupError(f"--config: [alerts]: must be a table of rule tables, not {_shown(raw)}")
    if len(raw) > MAX_RULES:
        raise StartupError(f"--config: [alerts]: {len(raw)} rules; at most {MAX_RULES}")
    tables = {str(name): _table(str(name), table) for name, table in raw.items()}
    rules: list[Rule] = []
    for builtin in BUILTINS:
        rule = _rule(builtin.name, _merged(builtin, tables.get(builtin.name, {})), builtin)
        if rule is not None:
            rules.append(rule)
    for name, table in tables.items():
        if name not in BUILTINS_BY_NAME:
            rule = _rule(name, table, None)
            if rule is not None:
                rules.append(rule)
    return tuple(rules)
