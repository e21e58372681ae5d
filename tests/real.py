"""Real external programs for integration tests: skipped when absent, failed in CI."""

from __future__ import annotations

import os
import shutil

import pytest


def require_program(name: str) -> str:
    """The path of program C{name}; skip the test without it, or fail when
    C{PISTATSD_REQUIRE_REAL=1} (CI), so a missing install can never pass as a skip."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if path is None:
        message = f"{name} is not installed"
        if os.environ.get("PISTATSD_REQUIRE_REAL") == "1":
            pytest.fail(message + " and PISTATSD_REQUIRE_REAL=1", pytrace=False)
        pytest.skip(message)
    return path
