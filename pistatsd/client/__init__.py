"""C{pistatsd-client}: the command-line client of pistatsd (treq + Autobahn under C{react}).

Modules: C{cli} (arguments, exit statuses), C{urls} (BASE_URL and what is
derived from it), C{tls} (certificate trust), C{rest} (stats, sum),
C{websocket} (echo, watch), C{formatting}, C{failures} (one-line errors).
"""

from pistatsd.client.cli import main

__all__ = ["main"]
