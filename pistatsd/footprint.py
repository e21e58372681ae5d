"""Leaving out of the daemon the libraries its configuration has no use for.

Twisted's TCP module imports pyOpenSSL when it is first imported, for
C{startTLS}; Twisted's endpoints and the reactor's C{listenSSL} do the same.
pyOpenSSL brings cryptography, whose compiled library alone is 7 MiB of the
process; with their Python modules, about 12 MiB of an idle daemon's 56.
Autobahn pulls cryptography in again through WAMP's authentication module,
and cbor2 through WAMP's message module, neither of which a WebSocket
server calls; its native helpers' wrappers load cffi's C parser
(L{pistatsd.ws.nvx}).

L{leave_out} is called once the configuration is read and before the
start-up checks import Twisted's TCP support (L{pistatsd.startup.load}).
It installs one import finder, L{LeaveOut}, which:

 - when nothing configured needs TLS, makes C{OpenSSL} unimportable, so
   Twisted takes its documented no-pyOpenSSL path (no C{startTLS}, no
   C{ssl:} endpoints);
 - defers the execution of the WAMP modules in L{DEFERRED} until something
   uses them;
 - has Autobahn's NVX wrappers imported from L{pistatsd.ws.nvx}.

When Twisted's TCP module, pyOpenSSL or Autobahn are already loaded (a test
run, a C{.tac} evaluated after the reactor), it does nothing.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from collections.abc import Mapping, Sequence
from importlib.abc import Loader, MetaPathFinder
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
#: run only when first used, so their own imports (cryptography, cbor2's
#: compiled module) wait too.
DEFERRED = ("autobahn.wamp.auth", "cbor2")

#: Autobahn's modules imported from pistatsd's instead (L{pistatsd.ws.nvx}).
SUBSTITUTES = {
    "autobahn.nvx._utf8validator": "pistatsd.ws.nvx",
    "autobahn.nvx._xormasker": "pistatsd.ws.nvx",
}

#: Loaded once these decisions can no longer be made.
TOO_LATE = ("OpenSSL", "twisted.internet.tcp", "autobahn")

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


class _Substitute(Loader):
    """Loads a module under another module's name: the same module object for both."""

    def __init__(self, substitute: str) -> None:
        self._substitute = substitute

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        return importlib.import_module(self._substitute)

    def exec_module(self, module: ModuleType) -> None:
        """Already executed, under its own name."""


class LeaveOut(MetaPathFinder):
    """Refuses the TLS libraries (when asked to), defers L{DEFERRED}, substitutes
    L{SUBSTITUTES}; every other import is left to the other finders."""

    def __init__(self, refuse_tls: bool = True) -> None:
        self.refuse_tls = refuse_tls

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if self.refuse_tls and fullname.split(".")[0] in TLS_LIBRARIES:
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
        substitute = SUBSTITUTES.get(fullname)
        if substitute is not None:
            return ModuleSpec(fullname, _Substitute(substitute))
        return None


def leave_out(
    config: Config,
    modules: Mapping[str, object] = sys.modules,
    meta_path: list[MetaPathFinderProtocol] = sys.meta_path,
) -> LeaveOut | None:
    """Install L{LeaveOut} for C{config}, unless it is too late or already done.

    @param modules: the loaded modules; C{meta_path}: the import system's
        finders. Both parameters for tests, which must not change their own.
    @return: the finder now installed, or None.
    """
    if any(name in modules for name in TOO_LATE):
        return None
    for finder in meta_path:
        if isinstance(finder, LeaveOut):
            return finder
    uses = tls_uses(config)
    finder = LeaveOut(refuse_tls=not uses)
    meta_path.insert(0, finder)
    if not uses:
        _log.info("no TLS configured: pyOpenSSL and cryptography are not loaded")
    return finder
