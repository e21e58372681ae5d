"""The third-party files pistatsd ships, pinned: the one place for versions and sums.

Upgrading uPlot: change the version and URL below, download the new tarball
(C{https://registry.npmjs.org/uplot/-/uplot-NEW.tgz}, or C{npm pack uplot@NEW}
where npm exists), review it, then record the SHA-256 sums of the tarball and
of each extracted file (C{sha256sum}).  A build whose download does not match
these sums fails, so the files pistatsd serves are exactly the reviewed ones.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PinnedFile:
    """One file taken from the tarball, installed under its base name."""

    member: str
    sha256: str

    @property
    def name(self) -> str:
        """The installed file name: the member's last path component."""
        return self.member.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Pin:
    """A library fetched at build time: where from, what it must hash to, where it goes."""

    name: str
    version: str
    url: str
    sha256: str
    files: tuple[PinnedFile, ...]
    #: Where the files go, relative to the C{pistatsd.www} package (the C{www/} folder).
    subdir: str
    #: The environment variable naming a local copy of the tarball (offline builds).
    env: str

    @property
    def tarball(self) -> str:
        """The tarball's file name, as the registry and C{npm pack} name it."""
        return self.url.rsplit("/", 1)[-1]


UPLOT = Pin(
    name="uPlot",
    version="1.6.32",
    url="https://registry.npmjs.org/uplot/-/uplot-1.6.32.tgz",
    sha256="4b8a8191e425658e3ea8c8c1314b0fc679c861ee3a1af2b20c7b16ba50b5133d",
    files=(
        PinnedFile(
            "package/dist/uPlot.iife.min.js",
            "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
        ),
        PinnedFile(
            "package/dist/uPlot.min.css",
            "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
        ),
        PinnedFile(
            "package/LICENSE",
            "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd",
        ),
    ),
    subdir="vendor/uplot",
    env="PISTATSD_UPLOT_TARBALL",
)
