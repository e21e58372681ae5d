"""One validated, immutable configuration, built from the command line and a TOML file.

Every option is declared once, in L{OPTIONS}: the twistd C{Options} class, the
TOML loader and the validation all read that table, so an option cannot be
settable in one place and forgotten in another.  Precedence: command line, then
the TOML file, then the built-in default.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from attrs import field, frozen


class ConfigError(ValueError):
    """A configuration value is unusable; the message names the option."""


def _parse_float(text: Any) -> float:
    if isinstance(text, bool):
        raise ValueError("not a number")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _parse_int(text: Any) -> int:
    if isinstance(text, bool):
        raise ValueError("not an integer")
    if isinstance(text, float):
        if not text.is_integer():
            raise ValueError("not an integer")
        return int(text)
    return int(str(text), 10)


def _parse_str(text: Any) -> str:
    if not isinstance(text, str):
        raise ValueError("not a string")
    if not text:
        raise ValueError("must not be empty")
    return text


@frozen
class OptionSpec:
    """How one option is parsed, bounded and documented."""

    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    metavar: str = ""
    repeatable: bool = False
    minimum: float | None = None
    maximum: float | None = None

    @property
    def attribute(self) -> str:
        """The L{Config} attribute this option fills."""
        return self.name.replace("-", "_")

    def convert(self, raw: Any) -> Any:
        """Parse and range-check one value; raise L{ConfigError} naming the option."""
        try:
            value = self.parse(raw)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"--{self.name}: invalid value {raw!r} ({e})") from None
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"--{self.name}: {value} is below the minimum {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(f"--{self.name}: {value} is above the maximum {self.maximum:g}")
        return value


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "port",
        _parse_str,
        ("tcp:8888",),
        "Plain HTTP + WebSocket endpoint (tcp:, unix:, systemd:...); repeatable.",
        "ENDPOINT",
        repeatable=True,
    ),
    OptionSpec("www", _parse_str, None, "Static root (default: the packaged www/).", "DIR"),
    OptionSpec(
        "state-dir",
        _parse_str,
        None,
        "State directory (default $XDG_STATE_HOME/pistatsd, /var/lib/pistatsd as root).",
        "DIR",
    ),
    OptionSpec(
        "sample-interval",
        _parse_float,
        1.0,
        "Background sampler period.",
        "S",
        minimum=0.05,
        maximum=3600,
    ),
    OptionSpec(
        "history-seconds",
        _parse_float,
        3600.0,
        "How much sampler history to keep in memory (/stats/history).",
        "S",
        minimum=1,
        maximum=86400,
    ),
    OptionSpec(
        "heartbeat",
        _parse_float,
        60.0,
        "Alive log line period (0 = off).",
        "S",
        minimum=0,
        maximum=86400,
    ),
    OptionSpec(
        "max-body",
        _parse_int,
        65536,
        "Request body limit in bytes.",
        "BYTES",
        minimum=1,
        maximum=1 << 30,
    ),
    OptionSpec(
        "max-connections",
        _parse_int,
        1024,
        "Concurrent connections (HTTP + WebSocket).",
        "N",
        minimum=1,
        maximum=1_000_000,
    ),
    OptionSpec(
        "max-pending-intervals",
        _parse_int,
        10000,
        "Pending /stats?interval= measurements before 503.",
        "N",
        minimum=1,
        maximum=1_000_000,
    ),
    OptionSpec(
        "idle-timeout",
        _parse_float,
        60.0,
        "Idle HTTP connection timeout.",
        "S",
        minimum=1,
        maximum=86400,
    ),
    OptionSpec("access-log", _parse_str, None, "Combined-format access log file (off).", "FILE"),
)

OPTIONS_BY_NAME: Mapping[str, OptionSpec] = {spec.name: spec for spec in OPTIONS}


def default_state_dir(environ: Mapping[str, str] = os.environ, euid: int | None = None) -> str:
    """Where generated state lives: systemd-style for root, XDG for everyone else."""
    if euid is None:
        euid = os.geteuid()
    if euid == 0:
        return "/var/lib/pistatsd"
    base = environ.get("XDG_STATE_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "pistatsd")


def default_www() -> str:
    """The packaged dashboard: installed as C{pistatsd/www}, or C{www/} beside a checkout."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "www", package.parent / "www"):
        if (candidate / "index.html").is_file():
            return str(candidate)
    return str(package.parent / "www")


@frozen
class Config:
    """Everything the daemon needs to know, validated once at start-up."""

    port: tuple[str, ...] = ("tcp:8888",)
    www: str = field(factory=default_www)
    state_dir: str = field(factory=default_state_dir)
    sample_interval: float = 1.0
    history_seconds: float = 3600.0
    heartbeat: float = 60.0
    max_body: int = 65536
    max_connections: int = 1024
    max_pending_intervals: int = 10000
    idle_timeout: float = 60.0
    access_log: str | None = None
    config: str | None = None


def load_toml(path: str) -> dict[str, Any]:
    """Read a TOML configuration file; errors name the file and the problem."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"--config: cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"--config: {path} is not valid TOML: {e}") from None
    return data


def _convert(spec: OptionSpec, raw: Any) -> Any:
    if spec.repeatable:
        values = raw if isinstance(raw, list | tuple) else [raw]
        if not values:
            raise ConfigError(f"--{spec.name}: needs at least one value")
        return tuple(spec.convert(v) for v in values)
    return spec.convert(raw)


def build_config(
    cli: Mapping[str, Any],
    validators: Sequence[Callable[[Config], None]] = (),
) -> Config:
    """Merge command-line values over the TOML file (if any) over defaults.

    @param cli: option name (with hyphens) to raw value, only for options the
        user actually gave; repeatable options map to a list.
    @param validators: further checks (endpoint syntax, files) run on the result.
    """
    unknown = [k for k in cli if k not in OPTIONS_BY_NAME and k != "config"]
    if unknown:
        raise ConfigError(f"unknown option --{unknown[0]}")
    config_path = cli.get("config")
    from_file: dict[str, Any] = {}
    if config_path is not None:
        from_file = load_toml(config_path)
        for key in from_file:
            if key not in OPTIONS_BY_NAME:
                raise ConfigError(f"--config: {config_path}: unknown key {key!r}")
    values: dict[str, Any] = {}
    for spec in OPTIONS:
        if spec.name in cli:
            values[spec.attribute] = _convert(spec, cli[spec.name])
        elif spec.name in from_file:
            try:
                values[spec.attribute] = _convert(spec, from_file[spec.name])
            except ConfigError as e:
                raise ConfigError(f"{e} (in {config_path})") from None
    config = Config(config=config_path, **values)
    for validate in validators:
        validate(config)
    return config
