"""setuptools entry point.  The metadata is in pyproject.toml; this only adds the
build step that puts the dashboard's charting library into every build (see
build_support/).
"""

import os
import sys

from setuptools import setup

# The build runs with the project root as working directory but not on sys.path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from build_support.commands import Build, BuildVendor

setup(cmdclass={"build": Build, "build_vendor": BuildVendor})
