"""The C{pistatsd} command: the same daemon as C{twistd -n pistatsd}, without the plugin scan."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.daemon import LAUNCHER

#: In a fresh interpreter: the subcommands the launcher's twistd offers, and
#: which of Twisted's plugin modules that imported.
SUBCOMMANDS = """
import json, sys
from pistatsd.twistd_command import ServerOptions
names = [command[0] for command in ServerOptions().subCommands]
plugins = sorted(m for m in sys.modules if m.startswith("twisted.plugins."))
print(json.dumps({"subcommands": names, "plugins": plugins}))
"""


def test_serves_in_the_foreground_without_a_pidfile(daemon, tmp_path):
    d = daemon(launcher=True, cwd=str(tmp_path))
    assert d.get("/sum?a=1&b=2")[2] == b"Sum: 3"
    assert "pistatsd" in d.text() and "ready: listening on" in d.text()
    assert "reactor class: pistatsd.eager_writes.EagerWriteReactor" in d.text()
    assert list(tmp_path.iterdir()) == [], "no twistd.pid, no twistd.log"
    d.stop()
    assert d.proc is not None and d.proc.returncode == 0


def test_only_pistatsd_s_plugin_is_imported():
    done = subprocess.run(
        [sys.executable, "-c", SUBCOMMANDS], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {
        "subcommands": ["pistatsd"],
        "plugins": ["twisted.plugins.pistatsd_plugin"],
    }


def test_help_lists_pistatsd_s_options():
    done = subprocess.run([LAUNCHER, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--history-db" in done.stdout and "--port" in done.stdout


def test_a_bad_option_is_one_line_and_a_failure():
    done = subprocess.run(
        [LAUNCHER, "--port", "nonsense:1"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "--port" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
