"""The C{pistatsd} command's twistd: C{twistd --nodaemon --pidfile= pistatsd}, no plugin scan.

twistd finds its subcommands by importing every plugin module in
C{twisted.plugins}: Twisted's own (conch, mail, names, words...) and
Autobahn's, about 1 MiB of an idle daemon's memory, for commands pistatsd
never runs.  This command is twistd with pistatsd's plugin as its only
subcommand, run as systemd and a terminal want it: in the foreground, no
pidfile, the log on standard output.  Its arguments are pistatsd's options;
for twistd's own (C{--logfile}, C{--reactor}, C{--umask}...), run
C{twistd [twistd options] pistatsd [options]}, which stays the same daemon.

It runs on the epoll reactor that sends what a pass wrote before it waits
again (L{pistatsd.eager_writes}), installed once the options are read: the
reactor's module imports Twisted's TLS support, which loads pyOpenSSL and
cryptography unless the configuration has left them out
(L{pistatsd.footprint}).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import TypeVar, cast

from twisted.application import app
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.python.usage import Options
from twisted.scripts import twistd
from zope.interface import Interface

_Kind = TypeVar("_Kind", bound=Interface)

#: What twistd is told before pistatsd's own options.
TWISTD_ARGS = ("--nodaemon", "--pidfile=", "pistatsd")


def _plugins(interface: type[_Kind], package: ModuleType | None = None) -> Iterable[_Kind]:
    """pistatsd's plugin alone for twistd's subcommands; any other kind as usual."""
    if interface is IServiceMaker:
        from twisted.plugins.pistatsd_plugin import pistatsd

        return [cast(_Kind, pistatsd)]
    return getPlugins(interface, package)


class ServerOptions(twistd.ServerOptions):
    """twistd's options, with pistatsd as the only subcommand."""

    _getPlugins = staticmethod(_plugins)


def run_on_eager_reactor(config: Options) -> None:
    """twistd's C{runApp}, on L{pistatsd.eager_writes}'s reactor."""
    from pistatsd.eager_writes import install_if_none

    install_if_none()
    twistd.runApp(config)


def run(argv: Sequence[str] | None = None) -> None:
    """Run the daemon in the foreground with C{argv} (default: the command line) as its options."""
    options = list(sys.argv[1:] if argv is None else argv)
    sys.argv[1:] = [*TWISTD_ARGS, *options]
    app.run(run_on_eager_reactor, ServerOptions)
