"""The setuptools side: every build of pistatsd carries the pinned charting library.

C{build_vendor} is a sub-command of C{build}, so it runs for wheels built from
a checkout or from the sdist and for editable installs alike.  It is not an
override of C{build_py} on purpose: setuptools runs a custom C{build_py}
"safely" during editable installs, turning its errors into a warning, and a
dashboard without charts must not install quietly.
"""

from __future__ import annotations

import logging
import os
from typing import ClassVar

from setuptools import Command
from setuptools.command.build import build
from setuptools.errors import BaseError

from build_support.pins import UPLOT
from build_support.vendor import VendorError, ensure

#: The package whose directory (C{www/} in the checkout) receives the files.
WWW_PACKAGE = "pistatsd.www"


class BuildVendor(Command):
    """Fetch, verify and install uPlot into the build (or the checkout, when editable)."""

    description = f"fetch and verify {UPLOT.name} {UPLOT.version} for the dashboard"
    user_options: ClassVar[list[tuple[str, str | None, str]]] = []

    def initialize_options(self) -> None:
        self.build_lib: str | None = None
        self.editable_mode = False

    def finalize_options(self) -> None:
        self.set_undefined_options("build_py", ("build_lib", "build_lib"))

    def _source_dir(self) -> str:
        """The files' place in the checkout: C{www/vendor/uplot}."""
        build_py = self.get_finalized_command("build_py")
        www = build_py.get_package_dir(WWW_PACKAGE)
        return os.path.join(os.path.abspath(www), *UPLOT.subdir.split("/"))

    def _build_dir(self) -> str:
        """The files' place in the built package: C{pistatsd/www/vendor/uplot}."""
        assert self.build_lib is not None
        return os.path.join(self.build_lib, *WWW_PACKAGE.split("."), *UPLOT.subdir.split("/"))

    def run(self) -> None:
        """Editable installs serve the checkout's C{www/}, so the files go there."""
        dest = self._source_dir() if self.editable_mode else self._build_dir()
        try:
            done = ensure(dest, UPLOT)
        except VendorError as e:
            # One line ("error: ..."), no traceback: setuptools prints it and fails the build.
            raise BaseError(str(e)) from None
        self.announce(done, logging.INFO)

    def get_source_files(self) -> list[str]:
        return []

    def get_outputs(self) -> list[str]:
        return [os.path.join(self._build_dir(), f.name) for f in UPLOT.files]

    def get_output_mapping(self) -> dict[str, str]:
        if not self.editable_mode:
            return {}
        source = self._source_dir()
        return {
            os.path.join(self._build_dir(), f.name): os.path.join(source, f.name)
            for f in UPLOT.files
        }


class Build(build):
    """C{build} with C{build_vendor} last, after C{build_py} has copied C{www/}."""

    sub_commands = [*build.sub_commands, ("build_vendor", None)]
