#!/bin/sh
# Install the dashboard's charting library (uPlot, pinned and checksummed) into
# www/vendor/uplot of this checkout, idempotently; needs Python only:
#
#   sh tools/fetch-assets.sh [--check]
#
# Builds and editable installs already do this (build_support/); this is for
# a checkout served with --www without installing it.  The version and sums
# are in build_support/pins.py.  Offline: set PISTATSD_UPLOT_TARBALL to a copy
# of the tarball named there.
set -eu
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" -m build_support.vendor "$@"
