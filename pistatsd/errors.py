"""The one start-up failure: a bad option, a port that cannot be bound, unusable TLS files.

Every check that can stop the daemon before it serves raises L{StartupError}
with one line naming the option and the problem; nothing else is needed for
twistd to report it well.
"""

from __future__ import annotations


class StartupError(SystemExit, ValueError):
    """Start-up cannot go on: exit non-zero with one clear line, no traceback.

    A C{SystemExit}, so C{twistd -n} (and a C{.tac} file) exits with the
    message and no traceback; also an C{Exception} (a C{ValueError}: a value
    given to the daemon is unusable), so daemon-mode twistd reports it
    through its status pipe to the waiting parent instead of leaving it
    hanging, and so C{Options.postOptions} can turn it into a usage error.
    The message names the option (C{--port tcp:80: cannot listen: ...}).
    """
