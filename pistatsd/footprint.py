"""Keeping the TLS libraries out of a daemon whose configuration has no use for them.

Twisted's TCP module imports pyOpenSSL when it is first imported, for
C{startTLS}; Twisted's endpoints and the reactor's C{listenSSL} do the same.
pyOpenSSL brings cryptography, whose compiled library alone is 7 MiB of the
process; with their Python modules, about 12 MiB of an idle daemon's 56.
Autobahn pulls cryptography in again through WAMP's authentication module,
which a WebSocket server never calls.

L{keep_tls_out} is called once the configuration is read and before the
start-up checks import Twisted's TCP support (L{pistatsd.startup.load}).
When nothing configured needs TLS it makes C{OpenSSL} unimportable, so
Twisted takes its documented no-pyOpenSSL path (no C{startTLS}, no C{ssl:}
endpoints), and defers the execution of Autobahn's WAMP authentication
module until something uses it.  When TLS is configured, or when Twisted's
TCP module or pyOpenSSL are already loaded (a test run, a C{.tac} evaluated
after the reactor), it does nothing.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from collections.abc import Mapping, Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import TYPE_CHECKING

from twisted.logger import Logger

from pistatsd.config import Config

if TYPE_CHECKING:
    from _typeshed.importlib import MetaPathFinderProtocol

_log = Logger()

#: Imported by Twisted only to offer TLS; refused when no TLS is configured.
TLS_LIBRARIES = ("OpenSSL",)

#: Imported by Autobahn at import time for WAMP, which pistatsd does not speak;
#: run only when first used, so their own imports (cryptography) wait too.
DEFERRED = ("autobahn.wamp.auth",)

#: Loaded once either decision can no longer be made.
TOO_LATE = ("OpenSSL", "twisted.internet.tcp")

#: TOML tables whose features may speak TLS (ntfy, webhooks, SMTP over TLS).
TLS_TABLES = ("notify", "smtp")


def tls_uses(config: Config) -> list[str]:
    """What in C{config} speaks TLS, each named as the user wrote it."""
    uses: list[str] = []
    if config.tls or config.cert or config.key:
        uses.append("--tls")
    if config.influx is not None and config.influx.lower().startswith("https:"):
        uses.append("--influx https://")
    if config.mqtt is not None and config.mqtt.lower().startswith("mqtts:"):
        uses.append("--mqtt mqtts://")
    uses.extend(f"[{table}]" for table in TLS_TABLES if table in config.extra)
    return uses


class TLSLeftOut(ModuleNotFoundError):
    """Raised by an import of pyOpenSSL in a daemon configured without TLS."""


class LeaveOut(MetaPathFinder):
    """Refuses the TLS libraries and defers L{DEFERRED}; every other import is untouched."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname.split(".")[0] in TLS_LIBRARIES:
            raise TLSLeftOut(
                f"{fullname} is not loaded: this pistatsd is configured without TLS "
                "(--tls, https:// or mqtts:// URLs, [notify] or [smtp] tables)",
                name=fullname,
            )
        if fullname in DEFERRED:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = importlib.util.LazyLoader(spec.loader)
            return spec
        return None


def keep_tls_out(
    config: Config,
    modules: Mapping[str, object] = sys.modules,
    meta_path: list[MetaPathFinderProtocol] = sys.meta_path,
) -> bool:
    """Leave pyOpenSSL and cryptography unloaded if nothing in C{config} needs them.

    @param modules: the loaded modules; C{meta_path}: the import system's
        finders. Both parameters for tests, which must not change their own.
    @return: whether they are now kept out.
    """
    if tls_uses(config) or any(name in modules for name in TOO_LATE):
        return False
    if not any(isinstance(finder, LeaveOut) for finder in meta_path):
        meta_path.insert(0, LeaveOut())
        _log.info("no TLS configured: pyOpenSSL and cryptography are not loaded")
    return True
