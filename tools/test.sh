#!/bin/sh
# Set up (if needed) and run the whole test suite: sh tools/test.sh [pytest args]
# Installs the Debian packages the real-component tests use (influxdb, nginx, chromium, mosquitto);
# the venv is (re)installed only when new or when the packaging changed (tools/bootstrap.sh).
# With PISTATSD_REQUIRE_REAL=1 a test whose real component is missing fails instead of skipping.
set -eu
cd "$(dirname "$0")/.."
sh tools/bootstrap.sh --system
VENV=${PISTATSD_VENV:-.venv}
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/mypy"
exec "$VENV/bin/python" -m pytest "$@"
