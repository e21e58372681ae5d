"""Deciding, for a configuration, what the daemon leaves out (L{pistatsd.leftout}).

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
It installs the finder L{pistatsd.leftout.LeaveOut}, or tells the one the
C{pistatsd} command installed, whether to refuse pyOpenSSL.  When Twisted's
TCP module, pyOpenSSL or Autobahn are already loaded (a test run, a C{.tac}
evaluated after the reactor), it does nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from twisted.logger import Logger

from pistatsd.config import Config
from pistatsd.leftout import LeaveOut, installed

if TYPE_CHECKING:
    from _typeshed.importlib import MetaPathFinderProtocol

_log = Logger()

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


def leave_out(
    config: Config,
    modules: Mapping[str, object] = sys.modules,
    meta_path: list[MetaPathFinderProtocol] = sys.meta_path,
) -> LeaveOut | None:
    """Install L{LeaveOut} for C{config} (or set the installed one), unless it is too late.

    @param modules: the loaded modules; C{meta_path}: the import system's
        finders. Both parameters for tests, which must not change their own.
    @return: the finder now installed, or None.
    """
    if any(name in modules for name in TOO_LATE):
        return None
    uses = tls_uses(config)
    finder = installed(meta_path)
    if finder is None:
        finder = LeaveOut()
        meta_path.insert(0, finder)
    finder.refuse_tls = not uses
    if not uses:
        _log.info("no TLS configured: pyOpenSSL and cryptography are not loaded")
    return finder
