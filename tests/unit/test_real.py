"""What every real-component test goes through when the thing is missing: a skip, or a
failure in CI."""

from __future__ import annotations

import shutil

import pytest

from tests.real import missing, require_program


def test_missing_skips_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PISTATSD_REQUIRE_REAL", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no PR_SET_MDWE"):
        missing("this kernel has no PR_SET_MDWE")


def test_missing_fails_when_real_things_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PISTATSD_REQUIRE_REAL", "1")
    with pytest.raises(pytest.fail.Exception, match="no PR_SET_MDWE and PISTATSD_REQUIRE_REAL=1"):
        missing("this kernel has no PR_SET_MDWE")


def test_a_missing_program_fails_when_real_things_are_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PISTATSD_REQUIRE_REAL", "1")
    monkeypatch.setattr(shutil, "which", lambda name, path=None: None)
    with pytest.raises(pytest.fail.Exception, match="systemd-analyze is not installed"):
        require_program("systemd-analyze")


def test_a_present_program_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, path=None: f"/usr/bin/{name}")
    assert require_program("nginx") == "/usr/bin/nginx"
