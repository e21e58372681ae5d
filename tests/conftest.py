"""Test-wide fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _real_state_dirs_untouched():
    """Fail the session if any test created or changed something in the real state dirs."""
    from tests.isolation import changes, real_state_dirs, snapshot

    before = {path: snapshot(path) for path in real_state_dirs()}
    yield
    touched = {path: names for path in before if (names := changes(before[path], snapshot(path)))}
    if touched:
        pytest.fail(
            f"tests wrote to the real state directories {touched}: give every daemon its"
            " own --state-dir (tests.daemon does)",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _run_in_tmp_path(tmp_path, monkeypatch):
    """Keep trial's C{mktemp()} folders out of the checkout: every test runs in its own tmp dir."""
    monkeypatch.chdir(tmp_path)
