"""The import finder that leaves libraries out of the daemon: what it refuses, defers, substitutes.

This module imports nothing but the standard library's import machinery:
the C{pistatsd} command (L{pistatsd.launcher}) installs L{LeaveOut} before
Twisted is imported, and L{pistatsd.footprint.leave_out} tells it, once the
configuration is read, whether TLS is left out.  It:

 - while the daemon starts (the C{pistatsd} command only), refuses the
   standard library's OpenSSL bindings, L{STARTUP_REFUSED};
 - when nothing configured needs TLS, makes C{OpenSSL} unimportable, so
   Twisted takes its documented no-pyOpenSSL path (no C{startTLS}, no
   C{ssl:} endpoints);
 - defers the execution of the modules in L{DEFERRED} (WAMP's, treq's
   uploads) until something uses them;
 - has Autobahn's NVX wrappers imported from L{pistatsd.ws.nvx}.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from collections.abc import MutableMapping, Sequence
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.importlib import MetaPathFinderProtocol

#: Imported by Twisted only to offer TLS; refused when no TLS is configured.
TLS_LIBRARIES = ("OpenSSL",)

#: The standard library's OpenSSL bindings.  Every module the daemon imports
#: while it starts takes them as optional: asyncio (imported by Twisted's
#: Deferreds), C{http.client} and C{urllib.request} (by C{twisted.python.compat})
#: import C{ssl} only to offer TLS, and C{hashlib} and C{hmac} fall back on their
#: own SHA and MD5 when C{_hashlib} is missing.  pistatsd's TLS is pyOpenSSL's,
#: whose cryptography carries its own OpenSSL.  Either of these would map the
#: system's libcrypto, about 4 MiB of an idle daemon.  What imports them once
#: the daemon is ready (prometheus_client's exposition, at the first scrape of
#: C{/metrics}) gets them.
STARTUP_REFUSED = ("ssl", "_ssl", "_hashlib")

#: Standard modules that offer TLS only when C{ssl} imports.  Executed while it
#: was refused, they are forgotten once start-up is over, so that what imports
#: them later runs them again, with C{ssl}: prometheus_client imports
#: C{urllib.request}'s C{HTTPSHandler} by name.
TLS_IF_SSL = ("http.client", "urllib.request")

#: Run only when first used, so their own imports wait too: imported by
#: Autobahn at import time for WAMP, which pistatsd does not speak
#: (cryptography, cbor2's compiled module); by treq for file uploads, which
#: the InfluxDB writer and the notifiers never make (about 0.3 MiB).  A second
#: import of one of them runs it: the static files' MIME table imports
#: C{mimetypes} when it needs it.
DEFERRED = ("autobahn.wamp.auth", "cbor2", "treq.multipart", "mimetypes")

#: Autobahn's modules imported from pistatsd's instead (L{pistatsd.ws.nvx}).
SUBSTITUTES = {
    "autobahn.nvx._utf8validator": "pistatsd.ws.nvx",
    "autobahn.nvx._xormasker": "pistatsd.ws.nvx",
}


class TLSLeftOut(ModuleNotFoundError):
    """Raised by an import of pyOpenSSL in a daemon configured without TLS."""


class LeftOutWhileStarting(ModuleNotFoundError):
    """Raised by an import of the standard library's OpenSSL bindings while the daemon starts."""


class _Substitute(Loader):
    """Loads a module under another module's name: the same module object for both."""

    def __init__(self, substitute: str) -> None:
        self._substitute = substitute

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        return importlib.import_module(self._substitute)

    def exec_module(self, module: ModuleType) -> None:
        """Already executed, under its own name."""


class LeaveOut(MetaPathFinder):
    """Refuses the TLS libraries (when asked to) and, while C{starting}, the standard
    library's OpenSSL bindings; defers L{DEFERRED}, substitutes L{SUBSTITUTES}; every
    other import is left to the other finders."""

    def __init__(self, refuse_tls: bool = True, starting: bool = False) -> None:
        self.refuse_tls = refuse_tls
        self.starting = starting

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if self.starting and fullname in STARTUP_REFUSED:
            raise LeftOutWhileStarting(
                f"{fullname} is not loaded while pistatsd starts: its TLS is pyOpenSSL's",
                name=fullname,
            )
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


def installed(meta_path: Sequence[MetaPathFinderProtocol] = sys.meta_path) -> LeaveOut | None:
    """The L{LeaveOut} among the import system's finders, if one is."""
    for finder in meta_path:
        if isinstance(finder, LeaveOut):
            return finder
    return None


def leave_out_while_starting(meta_path: list[MetaPathFinderProtocol] = sys.meta_path) -> LeaveOut:
    """Before Twisted is imported: refuse L{STARTUP_REFUSED} until L{startup_over}.

    TLS is not refused yet: that waits for the configuration.
    @param meta_path: the import system's finders, for tests.
    """
    finder = installed(meta_path)
    if finder is None:
        finder = LeaveOut(refuse_tls=False)
        meta_path.insert(0, finder)
    finder.starting = True
    return finder


def startup_over(
    meta_path: Sequence[MetaPathFinderProtocol] = sys.meta_path,
    modules: MutableMapping[str, ModuleType] = sys.modules,
) -> None:
    """The daemon is ready: what imports L{STARTUP_REFUSED} from now on gets them.

    The modules of L{TLS_IF_SSL} executed without C{ssl} are forgotten;
    those who imported them keep their copies.
    @param meta_path, modules: the import system's finders and modules, for tests.
    """
    finder = installed(meta_path)
    if finder is None or not finder.starting:
        return
    finder.starting = False
    if "ssl" not in modules:
        for name in TLS_IF_SSL:
            modules.pop(name, None)
