"""The C{pistatsd} command's entry point: what must happen before Twisted is imported.

Twisted's Deferreds import asyncio, and Twisted's compatibility module
C{urllib.request}; both import the standard library's C{ssl}, which maps the
system's libcrypto although nothing in pistatsd uses it
(L{pistatsd.leftout.STARTUP_REFUSED}).  Only an import finder installed
before Twisted's first import can leave it out, so this module imports
nothing else until it is installed; the daemon itself is run by
L{pistatsd.twistd_command}.  C{twistd pistatsd} runs the same daemon,
with those libraries loaded.
"""

from __future__ import annotations

from collections.abc import Sequence

from pistatsd.leftout import leave_out_while_starting


def main(argv: Sequence[str] | None = None) -> None:
    """Run the daemon in the foreground with C{argv} (default: the command line) as its options."""
    leave_out_while_starting()
    from pistatsd.twistd_command import run

    run(argv)
