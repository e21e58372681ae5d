#!/bin/sh
# Set up everything pistatsd needs on a fresh Debian-like machine, idempotently:
#   - a virtualenv in .venv (override with PISTATSD_VENV) with pistatsd installed
#     editable (compat mode, so twistd sees the plugin) plus the test tools;
#   - with --system (tests), the Debian packages the real-component tests use.
set -eu
cd "$(dirname "$0")/.."
VENV=${PISTATSD_VENV:-.venv}
PYTHON=${PYTHON:-python3}

if [ "${1:-}" = "--system" ]; then
    need=""
    for pair in influxd:influxdb nginx:nginx-light chromium:chromium npm:npm faketime:faketime; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || need="$need ${pair#*:}"
    done
    if [ -n "$need" ]; then
        if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
        echo "installing Debian packages:$need"
        $SUDO apt-get update -q
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $need
    fi
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "pistatsd needs Python 3.11 or newer" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e '.[test]' --config-settings editable_mode=compat
"$VENV/bin/twistd" --help | grep -q pistatsd || {
    echo "twistd does not list the pistatsd plugin" >&2; exit 1; }
# The dashboard's charting library, pinned and checksummed, from the npm registry.
sh tools/fetch-assets.sh
