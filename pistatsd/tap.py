"""twistd's entry: the options and C{makeService}, used by the plugin and the .tac file.

The options are parsed and checked (L{pistatsd.startup}); C{makeService}
hands the result to the composition root (L{pistatsd.compose}).  This
module imports only what parsing needs: twistd imports it before the
configuration is known, and what the daemon loads depends on it
(L{pistatsd.footprint}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.python import usage

from pistatsd.clock import use_monotonic_clock
from pistatsd.config import OPTIONS, Config
from pistatsd.errors import StartupError
from pistatsd.reactors import IPistatsdReactor, global_reactor
from pistatsd.startup import load

if TYPE_CHECKING:
    from twisted.application.service import MultiService


class Options(usage.Options):
    """twistd pistatsd options; every one can also come from the C{--config} TOML file."""

    synopsis = "[options]"
    longdesc = (
        "Serve live system stats over REST, WebSocket and a dashboard, plus static files. "
        "Every option can also be set in a TOML file given with --config "
        "(keys are the long option names); the command line wins."
    )
    optParameters = [["config", "c", None, "TOML configuration file.", str]] + [
        [spec.name, None, None, f"{spec.help} [default: {spec.default}]"]
        for spec in OPTIONS
        if not spec.repeatable and not spec.flag
    ]
    optFlags = [[spec.name, None, spec.help] for spec in OPTIONS if spec.flag]

    def __init__(self) -> None:
        super().__init__()
        self.repeated: dict[str, list[str]] = {}
        self.config: Config | None = None

    def opt_port(self, endpoint: str) -> None:
        """Plain HTTP + WebSocket endpoint (tcp:8888, unix:/run/p.sock, systemd:...);
        repeatable [default: tcp:8888]."""
        self.repeated.setdefault("port", []).append(endpoint)

    def opt_tls(self, endpoint: str) -> None:
        """HTTPS + WSS endpoint (ssl:8443, ...); repeatable [default: none]."""
        self.repeated.setdefault("tls", []).append(endpoint)

    def opt_allowed_origin(self, origin: str) -> None:
        """Browser Origin accepted on WebSockets besides same-origin; repeatable."""
        self.repeated.setdefault("allowed-origin", []).append(origin)

    def opt_allowed_host(self, name: str) -> None:
        """Host name served besides this machine's own (.example.org: and subdomains;
        * any, unsafe); repeatable."""
        self.repeated.setdefault("allowed-host", []).append(name)

    def opt_sensor_root(self, directory: str) -> None:
        """Directory sensor files may live under; repeatable [default: /sys, /proc]."""
        self.repeated.setdefault("sensor-root", []).append(directory)

    def given(self) -> dict[str, object]:
        """The options the user actually gave on the command line."""
        flags = {spec.name for spec in OPTIONS if spec.flag}
        values: dict[str, Any] = {
            name: value
            for name, value in self.items()
            if value is not None and name not in self.repeated and not (name in flags and not value)
        }
        for name in flags & set(values):
            values[name] = True
        values.update(self.repeated)
        return values

    def postOptions(self) -> None:
        try:
            self.config = load(self.given())
        except StartupError as e:
            raise usage.UsageError(str(e)) from None


def makeService(options: Options | Config, reactor: IPistatsdReactor | None = None) -> MultiService:
    """Build the whole daemon as one C{MultiService}; the reactor is injected for tests.

    A real reactor is first put on the monotonic clock (L{use_monotonic_clock}),
    before anything here schedules a timer; fakes are left as they are.
    """
    if reactor is None:
        reactor = global_reactor()
    config = options if isinstance(options, Config) else options.config
    if config is None:
        raise ValueError("options were not parsed")
    use_monotonic_clock(reactor)
    from pistatsd.compose import compose

    return compose(config, reactor)
