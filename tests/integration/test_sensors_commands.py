"""Command sensors with real processes: values, patterns, garbage,
failures, timeouts, hanging and stopped commands, secrets kept out of their environment."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.sensors.commands import CommandFailed, CommandRunner
from pistatsd.sensors.model import CommandSensor, parse_command_sensors
from tests.command_sensors import PY, make_service, python, read_only_site, within
from tests.support import request


def sensor(name: str, code: str, **table: Any) -> CommandSensor:
    (parsed,) = parse_command_sensors({name: {"command": python(code), **table}}, 10)
    return parsed


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest_twisted.inlineCallbacks
def test_prints_a_number(tmp_path: Path) -> Any:
    service, _ = make_service(tmp_path, sensor("fan", "print(42)", scale=0.5, offset=1, unit="rpm"))
    try:
        yield within(service.refresh())
        assert service.readings() == {"fan": 22.0}
        assert service.snapshot_section() == {
            "sensors": {"fan": {"value": 22.0, "unit": "rpm", "error": None}}
        }
    finally:
        yield within(service.stopService())


@pytest_twisted.inlineCallbacks
def test_pattern(tmp_path: Path) -> Any:
    service, _ = make_service(
        tmp_path,
        sensor("soc", 'print("temp=48.3\'C")', pattern=r"temp=([-\d.]+)"),
        sensor("nomatch", "print('volts=1.2')", pattern=r"temp=([-\d.]+)"),
    )
    try:
        yield within(service.refresh())
        assert service.readings() == {"nomatch": None, "soc": 48.3}
        assert service.reading("nomatch").error == "output did not match the pattern"
    finally:
        yield within(service.stopService())


@pytest_twisted.inlineCallbacks
def test_garbage(tmp_path: Path) -> Any:
    service, _ = make_service(
        tmp_path,
        sensor("junk", "print('hello world')"),
        sensor("silent", "pass"),
        sensor("inf", "print('inf')"),
    )
    try:
        yield within(service.refresh())
        assert service.readings() == {"inf": None, "junk": None, "silent": None}
        assert "not a number" in (service.reading("junk").error or "")
        assert service.reading("silent").error == "no output"
        assert "not a finite number" in (service.reading("inf").error or "")
    finally:
        yield within(service.stopService())


@pytest_twisted.inlineCallbacks
def test_failing_command(tmp_path: Path) -> Any:
    service, _ = make_service(
        tmp_path,
        sensor("exit", "import sys; print(1); sys.stderr.write('boom'); sys.exit(3)"),
        sensor("signal", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"),
    )
    try:
        yield within(service.refresh())
        assert service.reading("exit").error == "exited with status 3"
        assert service.reading("signal").error == "killed by signal 15"
    finally:
        yield within(service.stopService())


@pytest_twisted.inlineCallbacks
def test_hanging_command_is_killed(tmp_path: Path) -> Any:
    pidfile = str(tmp_path / "pid")
    code = f"import os, time\nopen({pidfile!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n"
    service, runner = make_service(tmp_path, sensor("hang", code, timeout=1))
    try:
        yield within(service.refresh())
        assert service.readings() == {"hang": None}
        assert service.reading("hang").error == "timed out after 1 s (killed)"
        with open(pidfile) as f:
            pid = int(f.read())
        for _ in range(500):  # reaped right after the kill
            if not runner.running:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        assert runner.running == 0
        assert not pid_alive(pid)
    finally:
        yield within(service.stopService())


@pytest_twisted.inlineCallbacks
def test_secrets_not_inherited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("PISTATSD_API_TOKEN", "hunter2")
    service, _ = make_service(
        tmp_path,
        sensor("leak", "import os; print(int('PISTATSD_API_TOKEN' in os.environ))"),
        sensor("env", "import os; print(len([k for k in os.environ if k != 'LC_CTYPE']))"),
    )
    try:
        yield within(service.refresh())
        assert service.readings() == {"env": 2.0, "leak": 0.0}  # PATH and LC_ALL only
    finally:
        yield within(service.stopService())


@pytest_twisted.inlineCallbacks
def test_shown_read_only_over_http(tmp_path: Path) -> Any:
    service, _ = make_service(tmp_path, sensor("fan", "print(7)", unit="C"))
    try:
        yield within(service.refresh())
        site = read_only_site(service)
        listing = json.loads(request(site, "GET", "/api/sensors").body)
        (document,) = listing["sensors"]
        assert document["value"] == 7.0
        assert document["command"] == python("print(7)")
        assert document["read_only"] is True
        assert document["links"] == {"self": "/api/sensors/fan"}
        ctype = {"Content-Type": "application/json"}
        body = json.dumps({"path": "/sys/x"}).encode()
        response = request(site, "PUT", "/api/sensors/fan", ctype, body)
        assert response.status == 403
        assert "configuration file" in json.loads(response.body)["error"]
        assert request(site, "DELETE", "/api/sensors/fan").status == 403
        body = json.dumps({"name": "fan", "path": "/sys/x"}).encode()
        response = request(site, "POST", "/api/sensors", ctype, body)
        assert response.status == 409
        assert "already exists (defined in the configuration file)" in response.body.decode()
        assert service.readings() == {"fan": 7.0}
    finally:
        yield within(service.stopService())


@pytest_twisted.inlineCallbacks
def test_stop_kills_running_commands(tmp_path: Path) -> Any:
    pidfile = str(tmp_path / "pid")
    code = (
        "import os, time\n"
        f"open({pidfile!r} + '.tmp', 'w').write(str(os.getpid()))\n"
        f"os.rename({pidfile!r} + '.tmp', {pidfile!r})\n"
        "time.sleep(60)\n"
    )
    service, runner = make_service(tmp_path, sensor("hang", code, timeout=60))
    try:
        for _ in range(1000):
            if os.path.exists(pidfile):
                break
            yield deferLater(reactor, 0.01, lambda: None)
        with open(pidfile) as f:
            pid = int(f.read())
        assert pid_alive(pid)
    finally:
        yield within(service.stopService())
    assert not pid_alive(pid)
    assert runner.running == 0


@pytest_twisted.inlineCallbacks
def test_one_run_at_a_time(tmp_path: Path) -> Any:
    runner = CommandRunner(reactor)
    counter = str(tmp_path / "counter")
    code = f"import time; open({counter!r}, 'a').write('x'); time.sleep(0.3); print(5)"
    argv = tuple(python(code))
    first = runner.run(argv, 10)
    second = runner.run(argv, 10)
    assert runner.running == 1
    outputs = yield within(gatherResults([first, second]))
    assert outputs == [b"5\n", b"5\n"]
    with open(counter) as f:
        assert f.read() == "x"
    third = yield within(runner.run(argv, 10))  # a new run once the previous one ended
    assert third == b"5\n"
    with open(counter) as f:
        assert f.read() == "xx"


@pytest_twisted.inlineCallbacks
def test_output_is_capped() -> Any:
    runner = CommandRunner(reactor)
    output = yield within(runner.run(tuple(python("print('1' * 100000)")), 10))
    assert len(output) == 4096


@pytest_twisted.inlineCallbacks
def test_missing_program() -> Any:
    runner = CommandRunner(reactor)
    with pytest.raises(CommandFailed):
        yield within(runner.run(("/nonexistent/program",), 5))


class OptionsTests(SynchronousTestCase):
    """A bad C{[sensors.*]} table is a usage error of C{twistd pistatsd}: one line, no traceback."""

    def parse(self, toml: str) -> str:
        """Parse C{--config} with C{toml}, expecting a usage error; its message."""
        from twisted.python import usage

        from pistatsd.tap import Options

        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write(toml)
        with self.assertRaises(usage.UsageError, msg=toml) as caught:
            Options().parseOptions(["--config", path])
        message = str(caught.exception)
        self.assertEqual(message.splitlines(), [message], "one line")
        return message

    def test_each_bad_shape(self) -> None:
        ok = f"command = [{json.dumps(PY)}]\n"
        cases = [
            ("[sensors.fan]\ncommand = 42\n", ("[sensors.fan]", "command")),
            ("[sensors.fan]\ncommand = []\n", ("[sensors.fan]", "command")),
            ('[sensors.fan]\ncommand = ["relative"]\n', ("[sensors.fan]", "absolute path")),
            ('[sensors.fan]\ncommand = ["/nonexistent/x"]\n', ("[sensors.fan]", "executable")),
            ("[sensors.fan]\n", ("[sensors.fan]", "command is required")),
            (f"[sensors.fan]\n{ok}shell = true\n", ("[sensors.fan]", "unknown key 'shell'")),
            (f'[sensors.fan]\n{ok}timeout = "5"\n', ("[sensors.fan]", "timeout")),
            (f"[sensors.fan]\n{ok}timeout = 0\n", ("[sensors.fan]", "timeout")),
            (f"[sensors.fan]\n{ok}timeout = 61\n", ("[sensors.fan]", "timeout")),
            (f"[sensors.fan]\n{ok}timeout = nan\n", ("[sensors.fan]", "timeout")),
            (f"[sensors.fan]\n{ok}timeout = inf\n", ("[sensors.fan]", "timeout")),
            (f'[sensors.fan]\n{ok}pattern = "("\n', ("[sensors.fan]", "pattern")),
            (f"[sensors.fan]\n{ok}scale = true\n", ("[sensors.fan]", "scale")),
            (f'[sensors.fan]\n{ok}unit = "C\\n"\n', ("[sensors.fan]", "unit")),
            ('[sensors.fan]\npath = "/sys/x"\n', ("[sensors.fan]", "REST API")),
            ("[sensors]\nfan = 5\n", ("[sensors.fan]", "must be a table")),
            ("sensors = 5\n", ("[sensors]", "must be a table")),
            (f'[sensors."a\\nb"]\n{ok}', ('[sensors."a\\nb"]', "invalid sensor name")),
        ]
        for toml, fragments in cases:
            message = self.parse(toml)
            for fragment in fragments:
                self.assertIn(fragment, message, toml)

    def test_relative_sensor_root(self) -> None:
        message = self.parse('sensor-root = ["sys"]\n')
        self.assertIn("--sensor-root 'sys'", message)

    def test_good_table_parses(self) -> None:
        from pistatsd.tap import Options

        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write(f"[sensors.fan]\ncommand = [{json.dumps(PY)}, '-c', 'print(1)']\n")
        options = Options()
        options.parseOptions(["--config", path])
        assert options.config is not None
        self.assertIn("fan", options.config.extra["sensors"])
