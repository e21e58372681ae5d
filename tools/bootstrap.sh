#!/bin/sh
# Set up everything pistatsd needs on a fresh Debian-like machine, idempotently:
#   - a virtualenv in .venv (override with PISTATSD_VENV) with pistatsd installed
#     editable (compat mode, so twistd sees the plugin) plus the test tools; the
#     install's build step puts the dashboard's charting library (uPlot, pinned
#     and checksummed) into www/vendor/, from the npm registry over HTTPS or from
#     PISTATSD_UPLOT_TARBALL: Python is all it needs, no Node.js or npm;
#   - with --system (tests), the Debian packages the real-component tests use.
# The install is redone only when the venv is new, the packaging files changed,
# the checkout moved, or the charting library is missing or altered.
set -eu
cd "$(dirname "$0")/.."
VENV=${PISTATSD_VENV:-.venv}
PYTHON=${PYTHON:-python3}

if [ "${1:-}" = "--system" ]; then
    need=""
    for pair in influxd:influxdb nginx:nginx-light chromium:chromium faketime:faketime promtool:prometheus mosquitto:mosquitto mosquitto_sub:mosquitto-clients; do
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
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV" || {
    echo "cannot create the virtualenv $VENV (Debian: apt-get install python3-venv)" >&2; exit 1; }

# What the installed state depends on: the checkout's place and the packaging files.
STAMP="$VENV/.pistatsd-install"
key=$("$VENV/bin/python" - <<'PY'
import glob, hashlib, os, sys
h = hashlib.sha256(f"{os.getcwd()}\n{sys.version}\n".encode())
for name in ["pyproject.toml", "setup.py", "MANIFEST.in", *sorted(glob.glob("build_support/*.py"))]:
    with open(name, "rb") as f:
        h.update(f"{name}\n".encode() + f.read())
print(h.hexdigest())
PY
)
if [ "$(cat "$STAMP" 2>/dev/null || true)" = "$key" ] &&
    "$VENV/bin/python" -m build_support.vendor --check >/dev/null 2>&1; then
    echo "pistatsd already installed in $VENV"
    exit 0
fi
rm -f "$STAMP"
"$VENV/bin/python" -m pip install -q --upgrade pip
# The build step fails with one line saying what to do when it cannot get uPlot.
"$VENV/bin/python" -m pip install -q -e '.[test]' --config-settings editable_mode=compat
"$VENV/bin/twistd" --help | grep pistatsd >/dev/null || {
    echo "twistd does not list the pistatsd plugin" >&2; exit 1; }
"$VENV/bin/python" -m build_support.vendor --check
echo "$key" >"$STAMP"
