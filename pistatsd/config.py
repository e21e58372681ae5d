"""One validated, immutable configuration, built from the command line and a TOML file.

Every option is declared once, in L{OPTIONS}: the twistd C{Options} class, the
TOML loader and the validation all read that table, so an option cannot be
settable in one place and forgotten in another.  Precedence: command line, then
the TOML file, then the built-in default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from attrs import field, frozen

from pistatsd.errors import StartupError
from pistatsd.optionvalues import (
    _parse_bool,
    _parse_discovery_prefix,
    _parse_float,
    _parse_host,
    _parse_int,
    _parse_mqtt_url,
    _parse_process_interval,
    _parse_str,
    _parse_topic_prefix,
    _parse_url,
)
from pistatsd.secrets import SecretFileError, read_secret

#: A configuration value is unusable; the message names the option.  The one
#: start-up failure (L{StartupError}), under the name the configuration uses.
ConfigError = StartupError


@frozen
class OptionSpec:
    """How one option is parsed, bounded and documented."""

    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    metavar: str = ""
    repeatable: bool = False
    flag: bool = False
    secret: bool = False
    minimum: float | None = None
    maximum: float | None = None

    @property
    def attribute(self) -> str:
        """The L{Config} attribute this option fills."""
        return self.name.replace("-", "_")

    def convert(self, raw: object) -> Any:
        """Parse and range-check one value; raise L{ConfigError} naming the option."""
        try:
            value = self.parse(raw)
        except (TypeError, ValueError) as e:
            # A value that may hold a secret (a URL with a password in it) is not echoed.
            shown = "" if self.secret else f" {raw!r}"
            raise ConfigError(f"--{self.name}: invalid value{shown} ({e})") from None
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
        "process-interval",
        _parse_process_interval,
        5.0,
        "Top-process scan period (0 = off, else at least 1).",
        "S",
        minimum=0,
        maximum=3600,
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
    # Durable history (SQLite)
    OptionSpec(
        "history-db",
        _parse_str,
        None,
        "History database file ('none' = off; default <state-dir>/history.sqlite3).",
        "FILE",
    ),
    OptionSpec(
        "history-flush",
        _parse_float,
        60.0,
        "Seconds between history writes (one transaction each, and at shutdown).",
        "S",
        minimum=1,
        maximum=3600,
    ),
    OptionSpec(
        "history-max-mb",
        _parse_int,
        64,
        "Hard bound on the history database size in MiB; the oldest rows go first.",
        "N",
        minimum=1,
        maximum=1 << 20,
    ),
    # TLS (HTTPS + WSS)
    OptionSpec(
        "tls",
        _parse_str,
        (),
        "HTTPS + WSS endpoint (ssl:8443, ...); repeatable.",
        "ENDPOINT",
        repeatable=True,
    ),
    OptionSpec("cert", _parse_str, None, "PEM certificate for ssl: endpoints naming none.", "FILE"),
    OptionSpec("key", _parse_str, None, "PEM private key for ssl: endpoints naming none.", "FILE"),
    # WebSockets
    OptionSpec(
        "broadcast-interval",
        _parse_float,
        1.0,
        "/ws/broadcast period.",
        "S",
        minimum=0.05,
        maximum=3600,
    ),
    OptionSpec(
        "allowed-origin",
        _parse_str,
        (),
        "Browser Origin accepted on WebSockets besides same-origin; repeatable.",
        "ORIGIN",
        repeatable=True,
    ),
    OptionSpec(
        "allowed-host",
        _parse_host,
        (),
        "Host name served besides this machine's own (.example.org: and subdomains; "
        "* any, unsafe); repeatable.",
        "NAME",
        repeatable=True,
    ),
    # InfluxDB reporting
    OptionSpec(
        "influx", _parse_url, None, "InfluxDB base URL; reporting is off without it.", "URL"
    ),
    OptionSpec("influx-db", _parse_str, "math_server", "InfluxDB v1 database.", "NAME"),
    OptionSpec("influx-user", _parse_str, None, "InfluxDB v1 user.", "NAME"),
    OptionSpec(
        "influx-password-file",
        _parse_str,
        None,
        "File holding the InfluxDB v1 password (or env PISTATSD_INFLUX_PASSWORD).",
        "FILE",
    ),
    OptionSpec(
        "influx-token-file",
        _parse_str,
        None,
        "File holding an InfluxDB v2 token (or env PISTATSD_INFLUX_TOKEN).",
        "FILE",
    ),
    OptionSpec("influx-org", _parse_str, None, "InfluxDB v2 organisation.", "ORG"),
    OptionSpec("influx-bucket", _parse_str, None, "InfluxDB v2 bucket.", "BUCKET"),
    OptionSpec(
        "report-interval",
        _parse_float,
        60.0,
        "InfluxDB report period.",
        "S",
        minimum=0.1,
        maximum=86400,
    ),
    OptionSpec(
        "influx-create-db", _parse_bool, False, "Create the v1 database at start.", flag=True
    ),
    OptionSpec("influx-cafile", _parse_str, None, "CA bundle for an https:// InfluxDB.", "FILE"),
    OptionSpec(
        "influx-queue",
        _parse_int,
        10000,
        "Points held while InfluxDB is unreachable.",
        "N",
        minimum=1,
        maximum=10_000_000,
    ),
    # MQTT and Home Assistant
    OptionSpec(
        "mqtt",
        _parse_mqtt_url,
        None,
        "MQTT broker, mqtt://host[:1883] or mqtts://host[:8883]; publishing is off without it.",
        "URL",
        secret=True,
    ),
    OptionSpec(
        "mqtt-cafile", _parse_str, None, "CA bundle for an mqtts:// broker (system CAs).", "FILE"
    ),
    OptionSpec("mqtt-user", _parse_str, None, "MQTT user name.", "NAME"),
    OptionSpec(
        "mqtt-password-file",
        _parse_str,
        None,
        "File holding the MQTT password (or env PISTATSD_MQTT_PASSWORD).",
        "FILE",
    ),
    OptionSpec(
        "mqtt-prefix",
        _parse_topic_prefix,
        None,
        "Topic prefix of this machine's state and availability (default pistatsd/<hostname>).",
        "TOPIC",
    ),
    OptionSpec(
        "mqtt-interval",
        _parse_float,
        30.0,
        "MQTT state publishing period.",
        "S",
        minimum=1,
        maximum=86400,
    ),
    OptionSpec(
        "mqtt-discovery-prefix",
        _parse_discovery_prefix,
        "homeassistant",
        "Home Assistant discovery prefix ('' = no discovery).",
        "TOPIC",
    ),
    OptionSpec(
        "mqtt-dashboard-url",
        _parse_url,
        None,
        "Dashboard link shown in Home Assistant (default: from the first --tls/--port).",
        "URL",
    ),
    # REST API and sensors
    OptionSpec(
        "api-token-file",
        _parse_str,
        None,
        "File holding the bearer token for mutating REST calls (or env PISTATSD_API_TOKEN).",
        "FILE",
    ),
    OptionSpec(
        "sensor-root",
        _parse_str,
        ("/sys", "/proc"),
        "Directory sensor files may live under; repeatable.",
        "DIR",
        repeatable=True,
    ),
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
    process_interval: float = 5.0
    heartbeat: float = 60.0
    max_body: int = 65536
    max_connections: int = 1024
    max_pending_intervals: int = 10000
    idle_timeout: float = 60.0
    access_log: str | None = None
    history_db: str | None = None
    history_flush: float = 60.0
    history_max_mb: int = 64
    tls: tuple[str, ...] = ()
    cert: str | None = None
    key: str | None = None
    broadcast_interval: float = 1.0
    allowed_origin: tuple[str, ...] = ()
    allowed_host: tuple[str, ...] = ()
    influx: str | None = None
    influx_db: str = "math_server"
    influx_user: str | None = None
    influx_password_file: str | None = None
    influx_token_file: str | None = None
    influx_org: str | None = None
    influx_bucket: str | None = None
    report_interval: float = 60.0
    influx_create_db: bool = False
    influx_cafile: str | None = None
    influx_queue: int = 10000
    mqtt: str | None = None
    mqtt_cafile: str | None = None
    mqtt_user: str | None = None
    mqtt_password_file: str | None = None
    mqtt_prefix: str | None = None
    mqtt_interval: float = 30.0
    mqtt_discovery_prefix: str = "homeassistant"
    mqtt_dashboard_url: str | None = None
    api_token_file: str | None = None
    sensor_root: tuple[str, ...] = ("/sys", "/proc")
    config: str | None = None
    #: Secrets, read from their files or the environment; never in repr or logs.
    influx_password: str | None = field(default=None, repr=False)
    influx_token: str | None = field(default=None, repr=False)
    api_token: str | None = field(default=None, repr=False)
    mqtt_password: str | None = field(default=None, repr=False)
    #: The TOML file's own tables (e.g. command sensors), passed through unparsed.
    extra: Mapping[str, Any] = field(factory=dict, repr=False)


def load_toml(path: str) -> dict[str, Any]:
    """Read a TOML configuration file; errors name the file and the problem."""
    import tomllib  # only with --config: a daemon without a file never loads the parser

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"--config: cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"--config: {path} is not valid TOML: {e}") from None
    return data


def _convert(spec: OptionSpec, raw: object) -> Any:
    if spec.repeatable:
        values = raw if isinstance(raw, list | tuple) else [raw]
        if not values:
            raise ConfigError(f"--{spec.name}: needs at least one value")
        return tuple(spec.convert(v) for v in values)
    return spec.convert(raw)


def _read_secret(
    option: str, path: str | None, env_name: str, environ: Mapping[str, str]
) -> str | None:
    """A secret from its file (first line, stripped) or the environment; never echoed."""
    try:
        return read_secret(path, env_name, environ)
    except SecretFileError as e:
        raise ConfigError(f"--{option}: {e}") from None


#: TOML tables that belong to features rather than to options (kept in L{Config.extra}).
TABLES = ("sensors", "alerts", "notify", "smtp")


def build_config(
    cli: Mapping[str, Any],
    validators: Sequence[Callable[[Config], None]] = (),
    environ: Mapping[str, str] = os.environ,
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
            if key not in OPTIONS_BY_NAME and key not in TABLES:
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
    values["influx_password"] = _read_secret(
        "influx-password-file",
        values.get("influx_password_file"),
        "PISTATSD_INFLUX_PASSWORD",
        environ,
    )
    values["influx_token"] = _read_secret(
        "influx-token-file", values.get("influx_token_file"), "PISTATSD_INFLUX_TOKEN", environ
    )
    values["api_token"] = _read_secret(
        "api-token-file", values.get("api_token_file"), "PISTATSD_API_TOKEN", environ
    )
    values["mqtt_password"] = _read_secret(
        "mqtt-password-file", values.get("mqtt_password_file"), "PISTATSD_MQTT_PASSWORD", environ
    )
    extra = {key: from_file[key] for key in TABLES if key in from_file}
    config = Config(config=config_path, extra=extra, **values)
    for validate in validators:
        validate(config)
    return config
