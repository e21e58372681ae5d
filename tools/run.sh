#!/bin/sh
# Set up (if needed) and run pistatsd in the foreground: sh tools/run.sh [pistatsd options]
set -eu
cd "$(dirname "$0")/.."
sh tools/bootstrap.sh
exec "${PISTATSD_VENV:-.venv}/bin/pistatsd" "$@"
