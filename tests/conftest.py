"""Test-wide fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _run_in_tmp_path(tmp_path, monkeypatch):
    """Keep trial's C{mktemp()} folders out of the checkout: every test runs in its own tmp dir."""
    monkeypatch.chdir(tmp_path)
