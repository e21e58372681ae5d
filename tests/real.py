"""Real external programs for integration tests: skipped when absent, failed in CI."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import NoReturn


def missing(message: str) -> NoReturn:
    """Skip the test for want of something real (a program, a kernel feature), or fail
    when C{PISTATSD_REQUIRE_REAL=1} (CI), so a missing install can never pass as a skip.

    pytest is imported here, not by the module: the benchmarks start the same
    real programs (influxd) from a venv without the test tools."""
    import pytest

    if os.environ.get("PISTATSD_REQUIRE_REAL") == "1":
        pytest.fail(message + " and PISTATSD_REQUIRE_REAL=1", pytrace=False)
    pytest.skip(message)


def require_program(name: str) -> str:
    """The path of program C{name}; L{missing} without it."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if path is None:
        missing(f"{name} is not installed")
    return path


def require_library(package: str, filename: str) -> str:
    """The path of shared library C{filename} from Debian package C{package}
    (as C{dpkg -L} lists it); skipped or failed like L{require_program}."""
    try:
        listed = subprocess.run(
            ["dpkg", "-L", package], capture_output=True, text=True, timeout=30
        ).stdout.splitlines()
    except OSError:
        listed = []
    for path in listed:
        if os.path.basename(path) == filename and os.path.isfile(path):
            return path
    missing(f"{filename} (Debian package {package}) is not installed")
