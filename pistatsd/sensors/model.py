"""Sensor definitions as value objects, and the validation that builds them.

Two kinds of sensor exist.  A L{FileSensor} reads a number from a small file
under an allowed root (sysfs, procfs); anyone allowed to change sensors may
define one over HTTP.  A L{CommandSensor} runs a program: it can only come
from the TOML file, because whoever may define it may run code as the daemon.

Validation is strict and its messages are meant for people: every problem
names the field and says what was expected, so a 400 is self-explanatory.
"""

from __future__ import annotations

import json
import math
import os
import re

from attrs import field, frozen

from pistatsd.errors import StartupError
from pistatsd.jsontypes import JSONMapping, JSONObject

#: A sensor name: it appears in URLs, Prometheus labels and InfluxDB tags, so
#: it is kept to characters that need no escaping anywhere.  It must not start
#: with a dot or a dash (C{..} as a URL segment, C{-x} as an option).
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
NAME_RULE = "1 to 64 letters, digits, '_', '.' or '-', not starting with '.' or '-'"

MAX_UNIT_LENGTH = 16
MAX_PATH_LENGTH = 4096
#: Limits of a command sensor's argv: far below the kernel's, and far above need.
MAX_COMMAND_ARGS = 64
MAX_ARGUMENT_LENGTH = 4096
MAX_COMMAND_TIMEOUT = 60.0
DEFAULT_COMMAND_TIMEOUT = 5.0

#: Fields a client may send when defining a file sensor.
FILE_FIELDS = ("name", "path", "scale", "offset", "unit")
#: Fields the server adds to its answers: accepted and ignored on input, so a
#: client can GET a sensor, change a field and PUT the document back.
SERVER_FIELDS = frozenset({"value", "error", "links"})
#: Keys of a C{[sensors.NAME]} table in the TOML file.
COMMAND_FIELDS = ("command", "pattern", "scale", "offset", "unit", "timeout")


class InvalidSensor(ValueError):
    """A sensor definition is unusable; the message says why, for a 400 answer."""


class SensorError(Exception):
    """A change that cannot be made now; C{code} is the HTTP status that says why."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


#: Characters refused in paths, names and units: C0 and C1 controls, DEL, the
#: Unicode line and paragraph separators and the bidirectional formatting
#: characters.  Sensor definitions end up in log lines and text answers, where
#: these would start a forged line or show text in another order than stored.
CONTROL_CHARACTERS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def check_no_controls(field_name: str, text: str) -> str:
    """C{text} unless it holds a L{CONTROL_CHARACTERS} character; the message names it."""
    found = CONTROL_CHARACTERS.search(text)
    if found is not None:
        raise InvalidSensor(
            f"{field_name} must not contain control characters (U+{ord(found.group()):04X})"
        )
    return text


def check_name(name: object) -> str:
    """C{name} if it is a valid sensor name, else L{InvalidSensor}."""
    if not isinstance(name, str):
        raise InvalidSensor("name must be a string")
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidSensor(f"invalid sensor name {name!r}: expected {NAME_RULE}")
    return name


def finite(field_name: str, value: object, default: float) -> float:
    """A JSON/TOML number as a finite float; booleans and numeric text are refused."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSensor(f"{field_name} must be a number, not {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        raise InvalidSensor(f"{field_name} must be a finite number") from None
    if not math.isfinite(number):
        raise InvalidSensor(f"{field_name} must be a finite number")
    return number


def check_unit(value: object) -> str:
    """A short printable unit: it is written into text answers and line protocol."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidSensor("unit must be a string")
    if len(value) > MAX_UNIT_LENGTH:
        raise InvalidSensor(f"unit must be at most {MAX_UNIT_LENGTH} characters")
    check_no_controls("unit", value)
    if not value.isprintable():
        raise InvalidSensor("unit must be printable text (no formatting characters)")
    return value


def check_path_syntax(path: object) -> str:
    """The syntactic half of confinement: absolute, no C{..}, no NUL, not too long.

    Where the path really leads is checked by L{pistatsd.sensors.confine}.
    """
    if not isinstance(path, str):
        raise InvalidSensor("path must be a string")
    if not path:
        raise InvalidSensor("path must not be empty")
    if "\0" in path:
        raise InvalidSensor("path must not contain NUL bytes")
    if len(path) > MAX_PATH_LENGTH:
        raise InvalidSensor(f"path must be at most {MAX_PATH_LENGTH} characters")
    check_no_controls("path", path)
    if not path.startswith("/"):
        raise InvalidSensor(f"path must be absolute, not {path!r}")
    if ".." in path.split("/"):
        raise InvalidSensor("path must not contain '..' segments")
    return path


@frozen
class FileSensor:
    """A number read from a file: C{float(contents) * scale + offset}.

    The path is kept as given (sysfs paths are usually symlinks, and the
    link is what stays stable across reboots); it is re-resolved on each read.
    """

    name: str
    path: str
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""

    def definition(self) -> JSONObject:
        """The fields a client sends and gets back, and the persisted form."""
        return {
            "name": self.name,
            "path": self.path,
            "scale": self.scale,
            "offset": self.offset,
            "unit": self.unit,
        }


@frozen
class CommandSensor:
    """A number printed by a program run without a shell (TOML file only).

    Without a C{pattern} the whole output, stripped, must be a number; with
    one, its single group is.
    """

    name: str
    command: tuple[str, ...]
    pattern: re.Pattern[str] | None = field(default=None, eq=False)
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    timeout: float = DEFAULT_COMMAND_TIMEOUT

    def definition(self) -> JSONObject:
        """What clients see: the command is shown, and marked read-only."""
        return {
            "name": self.name,
            "command": list(self.command),
            "pattern": self.pattern.pattern if self.pattern is not None else None,
            "scale": self.scale,
            "offset": self.offset,
            "unit": self.unit,
            "timeout": self.timeout,
            "read_only": True,
        }


Sensor = FileSensor | CommandSensor


@frozen
class Reading:
    """The latest outcome of reading one sensor: a value or an error, never both."""

    value: float | None
    error: str | None

    @classmethod
    def failed(cls, error: str) -> Reading:
        """A reading that did not produce a number."""
        return cls(None, error)


#: Before the first read of a sensor has finished.
NOT_READ_YET = Reading.failed("no reading yet")


def scaled(raw: float, sensor: Sensor) -> Reading:
    """Apply scale and offset; a result too large to represent is an error, not inf."""
    value = raw * sensor.scale + sensor.offset
    if not math.isfinite(value):
        return Reading.failed("reading out of range after scale and offset")
    return Reading(value, None)


def parse_number(text: str) -> float:
    """A finite float from text such as sysfs prints (C{"48312\\n"}).

    The message never quotes the text: a sensor may point at a file holding
    secrets (C{/proc/self/environ}), and errors are shown to every client.
    """
    stripped = text.strip()
    if not stripped:
        raise ValueError("empty")
    try:
        number = float(stripped)
    except ValueError:
        raise ValueError(f"not a number ({len(stripped)} characters)") from None
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def parse_file_sensor(document: JSONMapping, url_name: str | None = None) -> FileSensor:
    """Build a L{FileSensor} from a client's JSON object.

    @param url_name: for PUT, the name in the URL: the body may omit its
        C{name}, and must not contradict it.
    @raise InvalidSensor: with a message naming the offending field.
    """
    unknown = sorted(k for k in document if k not in FILE_FIELDS and k not in SERVER_FIELDS)
    if unknown:
        raise InvalidSensor(f"unknown field {unknown[0]!r}; a sensor has {', '.join(FILE_FIELDS)}")
    name = document.get("name")
    if url_name is not None:
        if name is not None and name != url_name:
            raise InvalidSensor(
                f"the name in the body ({name!r}) does not match the URL ({url_name!r})"
            )
        name = url_name
    elif name is None:
        raise InvalidSensor("name is required")
    name = check_name(name)
    if "path" not in document:
        raise InvalidSensor("path is required")
    return FileSensor(
        name=name,
        path=check_path_syntax(document["path"]),
        scale=finite("scale", document.get("scale"), 1.0),
        offset=finite("offset", document.get("offset"), 0.0),
        unit=check_unit(document.get("unit")),
    )


def _command(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidSensor('command must be a non-empty array of strings, e.g. ["/usr/bin/x"]')
    if len(value) > MAX_COMMAND_ARGS:
        raise InvalidSensor(f"command must have at most {MAX_COMMAND_ARGS} elements")
    for arg in value:
        if not isinstance(arg, str):
            raise InvalidSensor(
                f"command must be an array of strings, not one with a {type(arg).__name__}"
            )
        if "\0" in arg:
            raise InvalidSensor("command arguments must not contain NUL bytes")
        if len(arg) > MAX_ARGUMENT_LENGTH:
            raise InvalidSensor(
                f"command arguments must be at most {MAX_ARGUMENT_LENGTH} characters each"
            )
    program = value[0]
    if not program.startswith("/"):
        raise InvalidSensor(
            f"the program must be an absolute path (no PATH search), not {program!r}"
        )
    try:
        check_no_controls("the program's path", program)
    except InvalidSensor as e:
        raise InvalidSensor(f"{e}: {program!r}") from None
    if not (os.path.isfile(program) and os.access(program, os.X_OK)):
        raise InvalidSensor(f"{program!r} is not an executable file")
    return tuple(value)


def _pattern(value: object) -> re.Pattern[str] | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidSensor("pattern must be a string (a regular expression)")
    try:
        compiled = re.compile(value)
    except re.error as e:
        raise InvalidSensor(f"pattern is not a valid regular expression: {e}") from None
    if compiled.groups != 1:
        raise InvalidSensor(
            f"pattern must have exactly one group around the number, not {compiled.groups}"
        )
    return compiled


def _timeout(value: object) -> float:
    timeout = finite("timeout", value, DEFAULT_COMMAND_TIMEOUT)
    if not 0 < timeout <= MAX_COMMAND_TIMEOUT:
        raise InvalidSensor(f"timeout must be above 0 and at most {MAX_COMMAND_TIMEOUT:g} seconds")
    return timeout


def parse_command_sensor(name: str, table: object) -> CommandSensor:
    """One C{[sensors.NAME]} table; L{InvalidSensor} with the field named."""
    check_name(name)
    if not isinstance(table, dict):
        raise InvalidSensor(f"must be a table with command = [...], not a {_toml_type(table)}")
    if "path" in table:
        raise InvalidSensor(
            "file sensors are defined over the REST API (POST /api/sensors); "
            "sensors in the TOML file run a command"
        )
    unknown = sorted(k for k in table if k not in COMMAND_FIELDS)
    if unknown:
        raise InvalidSensor(f"unknown key {unknown[0]!r}; expected {', '.join(COMMAND_FIELDS)}")
    if "command" not in table:
        raise InvalidSensor("command is required")
    return CommandSensor(
        name=name,
        command=_command(table["command"]),
        pattern=_pattern(table.get("pattern")),
        scale=finite("scale", table.get("scale"), 1.0),
        offset=finite("offset", table.get("offset"), 0.0),
        unit=check_unit(table.get("unit")),
        timeout=_timeout(table.get("timeout")),
    )


def parse_command_sensors(tables: object, limit: int) -> tuple[CommandSensor, ...]:
    """Every command sensor of the TOML file's C{[sensors]} table, validated at start-up.

    @raise StartupError: naming the sensor and the problem, so twistd can show
        it as a usage error instead of failing on the first tick.
    """
    if tables is None:
        return ()
    if not isinstance(tables, dict):
        raise StartupError(
            "--config: [sensors] must be a table of [sensors.NAME] tables, "
            f"not a {_toml_type(tables)}"
        )
    if len(tables) > limit:
        raise StartupError(f"--config: [sensors] defines {len(tables)} sensors; at most {limit}")
    sensors = []
    for name, table in tables.items():
        try:
            sensors.append(parse_command_sensor(name, table))
        except InvalidSensor as e:
            raise StartupError(f"--config: [sensors.{toml_key(name)}]: {e}") from None
    return tuple(sensors)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_key(name: str) -> str:
    """C{name} as it is written in a TOML table header: bare, or quoted and escaped.

    Error messages quote the table they are about; a name holding a newline
    must not turn the one-line usage error into two.
    """
    if _BARE_KEY.fullmatch(name):
        return name
    return json.dumps(name)


def _toml_type(value: object) -> str:
    """What a TOML value is, in TOML's words, for error messages."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    return "date or time"
