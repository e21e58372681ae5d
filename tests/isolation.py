"""The real state directories, watched: no test may create or change anything there.

Every test daemon gets a state directory of its own (L{tests.daemon}); the
session guard in C{conftest.py} compares these snapshots before and after the
run, so a test that falls back to the defaults fails the session instead of
leaving files in C{/var/lib/pistatsd} or C{~/.local/state/pistatsd}.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pistatsd.config import default_state_dir

#: One entry's identity: type and permission bits, size, modification time.
Entry = tuple[int, int, int]


def real_state_dirs(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The defaults for root and for any other user (whoever runs the tests)."""
    return sorted({default_state_dir(environ, euid=0), default_state_dir(environ, euid=65534)})


def snapshot(path: str) -> dict[str, Entry]:
    """Everything under C{path}, C{path} included, by relative name; empty when absent."""
    found: dict[str, Entry] = {}
    if not os.path.lexists(path):
        return found
    for directory, dirs, files in os.walk(path):
        for name in [directory, *(os.path.join(directory, n) for n in dirs + files)]:
            try:
                st = os.lstat(name)
            except FileNotFoundError:
                continue
            found[os.path.relpath(name, path)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return found


def changes(before: dict[str, Entry], after: dict[str, Entry]) -> list[str]:
    """What appeared, went or changed between two snapshots, by name."""
    return sorted(
        name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    )
