"""Command sensors with real processes, the worker-thread runner on the real reactor,
and start-up validation of the TOML C{[sensors.NAME]} tables."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from pistatsd.config import Config, ConfigError, build_config
from pistatsd.sensors.commands import CommandFailed, CommandRunner
from pistatsd.sensors.confine import Confinement
from pistatsd.sensors.model import CommandSensor, FileSensor, parse_command_sensors
from pistatsd.sensors.resource import MutationGuard, SensorsResource
from pistatsd.sensors.service import SensorsService
from pistatsd.sensors.store import SensorStore
from pistatsd.sensors.threads import ThreadedRunner
from pistatsd.sensors.wiring import check_sensors, sensors_service
from pistatsd.web.site import PistatsdSite
from tests.support import request

PY = sys.executable


def python(code: str) -> list[str]:
    """An argv running C{code} in a child Python: no shell anywhere."""
    return [PY, "-c", code]


def sensor(name: str, code: str, **table: Any) -> CommandSensor:
    (parsed,) = parse_command_sensors({name: {"command": python(code), **table}}, 10)
    return parsed


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# Tests on the real reactor are plain pytest-twisted functions: trial's TestCase
# cannot drive the reactor once pytest-twisted's greenlet runs it (child
# processes are then never reaped).  Every wait is bounded by within().


def within(d: Deferred[Any], seconds: float = 15) -> Deferred[Any]:
    """C{d}, failing with a timeout instead of hanging the test run."""
    return d.addTimeout(seconds, reactor)


def make_service(tmp_path: Path, *commands: CommandSensor) -> tuple[SensorsService, CommandRunner]:
    state = str(tmp_path / "state")
    runner = CommandRunner(reactor)
    service = SensorsService(
        clock=reactor,
        confinement=Confinement.of([state]),
        store=SensorStore(state, reactor.seconds),
        commands=commands,
        command_runner=runner,
        interval=3600,
    )
    service.startService()
    return service, runner


def read_only_site(service: SensorsService) -> PistatsdSite:
    api = Resource()
    api.putChild(b"sensors", SensorsResource(service, MutationGuard(None)))
    root = Resource()
    root.putChild(b"api", api)
    return PistatsdSite(root, reactor=Clock())


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


def test_no_http_field_makes_a_command(tmp_path: Path) -> None:
    service, _ = make_service(tmp_path)
    try:
        site = read_only_site(service)
        body = json.dumps({"name": "x", "path": "/sys/x", "command": ["/bin/true"]}).encode()
        response = request(site, "POST", "/api/sensors", {"Content-Type": "application/json"}, body)
        assert response.status == 400
        assert "unknown field 'command'" in json.loads(response.body)["error"]
    finally:
        service.stopService()


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


@pytest_twisted.inlineCallbacks
def test_refuses_after_stop() -> Any:
    runner = CommandRunner(reactor)
    yield runner.stop()
    with pytest.raises(CommandFailed, match="stopping"):
        yield runner.run(tuple(python("print(1)")), 5)


# File reads and saves in worker threads, on the real reactor.


@pytest_twisted.inlineCallbacks
def test_service_with_threads(tmp_path: Path) -> Any:
    root = tmp_path / "root"
    root.mkdir()
    (root / "t").write_text("48312\n")
    service = SensorsService(
        clock=reactor,
        confinement=Confinement.of([str(root)]),
        store=SensorStore(str(tmp_path / "state"), reactor.seconds),
        blocking=ThreadedRunner(reactor),
        interval=3600,
    )
    service.startService()
    try:
        document = yield within(service.create(FileSensor("cpu", f"{root}/t", scale=0.001)))
        assert document["value"] == 48.312
        assert os.listdir(tmp_path / "state") == ["sensors.json"]
    finally:
        yield within(service.stopService())


@pytest_twisted.inlineCallbacks
def test_reads_run_off_the_reactor_thread() -> Any:
    runner = ThreadedRunner(reactor)
    runner.start()
    try:
        name = yield within(runner(lambda: threading.current_thread().name))
        assert name != threading.current_thread().name
        assert "pistatsd-sensors" in name
    finally:
        yield within(runner.stop())


@pytest_twisted.inlineCallbacks
def test_stop_does_not_wait_forever() -> Any:
    release = threading.Event()
    runner = ThreadedRunner(reactor, grace=0.2)
    runner.start()
    try:
        stuck = runner(release.wait)
        started = reactor.seconds()
        yield within(runner.stop())
        assert reactor.seconds() - started < 5
    finally:
        release.set()
    yield within(stuck)


@pytest_twisted.inlineCallbacks
def test_stopped_runner_fails_fast() -> Any:
    runner = ThreadedRunner(reactor)
    runner.start()
    yield within(runner.stop())
    with pytest.raises(RuntimeError):
        yield runner(lambda: 1)


class ConfigTests(SynchronousTestCase):
    """Bad C{[sensors.NAME]} tables stop start-up with the sensor named."""

    def test_valid(self) -> None:
        (fan,) = parse_command_sensors(
            {"fan": {"command": [PY, "-c", "print(1)"], "pattern": "t=(.*)", "timeout": 2}}, 256
        )
        self.assertEqual(fan.command, (PY, "-c", "print(1)"))
        self.assertEqual((fan.scale, fan.offset, fan.unit, fan.timeout), (1.0, 0.0, "", 2.0))
        self.assertEqual(parse_command_sensors(None, 256), ())

    def test_invalid(self) -> None:
        self.plain_file = os.path.abspath(self.mktemp())
        with open(self.plain_file, "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(self.plain_file, 0o644)
        ok = [PY]
        cases: list[tuple[Any, tuple[str, ...]]] = [
            ({"fan": {}}, ("[sensors.fan]", "command is required")),
            ({"fan": {"command": []}}, ("[sensors.fan]", "non-empty array")),
            ({"fan": {"command": "/usr/bin/vcgencmd measure_temp"}}, ("array of strings",)),
            ({"fan": {"command": [PY, 5]}}, ("array of strings",)),
            ({"fan": {"command": ["vcgencmd"]}}, ("absolute path",)),
            ({"fan": {"command": ["/nonexistent/vcgencmd"]}}, ("not an executable file",)),
            ({"fan": {"command": [self.plain_file]}}, ("not an executable file",)),
            ({"fan": {"command": ok, "pattern": "("}}, ("not a valid regular expression",)),
            ({"fan": {"command": ok, "pattern": "temp"}}, ("exactly one group",)),
            ({"fan": {"command": ok, "pattern": "(a)(b)"}}, ("exactly one group",)),
            ({"fan": {"command": ok, "timeout": 0}}, ("timeout",)),
            ({"fan": {"command": ok, "timeout": 61}}, ("timeout",)),
            ({"fan": {"command": ok, "scale": "2"}}, ("scale must be a number",)),
            ({"fan": {"command": ok, "unit": "x" * 40}}, ("unit",)),
            ({"fan": {"command": ok, "shell": True}}, ("unknown key 'shell'",)),
            ({"fan": {"path": "/sys/x"}}, ("REST API",)),
            ({"bad name": {"command": ok}}, ('[sensors."bad name"]', "invalid sensor name")),
            ({"a\nb": {"command": ok}}, ('[sensors."a\\nb"]', "invalid sensor name")),
            ({"fan": "x"}, ("[sensors.fan]", "must be a table", "not a string")),
            ("x", ("[sensors]", "not a string")),
            ({"fan": {"command": 42}}, ("[sensors.fan]", "non-empty array")),
            ({"fan": {"command": ok * 65}}, ("[sensors.fan]", "at most 64 elements")),
            ({"fan": {"command": [PY, "x" * 4097]}}, ("[sensors.fan]", "at most 4096 characters")),
            ({"fan": {"command": ["/usr/bin/a\nb"]}}, ("[sensors.fan]", "control characters")),
            ({"fan": {"command": ["/nonexistent/\u202ex"]}}, ("control characters", "U+202E")),
            ({"fan": {"command": ok, "timeout": "5"}}, ("timeout must be a number",)),
            ({"fan": {"command": ok, "timeout": True}}, ("timeout must be a number",)),
            ({"fan": {"command": ok, "timeout": -1}}, ("timeout",)),
            ({"fan": {"command": ok, "timeout": float("nan")}}, ("timeout must be a finite",)),
            ({"fan": {"command": ok, "unit": "C\r"}}, ("unit", "control characters")),
            ({"fan": {"command": ok, "unit": "\u2067C"}}, ("unit", "control characters")),
        ]
        for tables, fragments in cases:
            self.assertConfigError(tables, *fragments)

    def assertConfigError(self, tables: Any, *fragments: str) -> None:
        with self.assertRaises(ConfigError, msg=repr(tables)) as caught:
            parse_command_sensors(tables, 256)
        message = str(caught.exception)
        self.assertEqual(message.splitlines(), [message], "one line")
        for fragment in fragments:
            self.assertIn(fragment, message, repr(tables))

    def test_too_many(self) -> None:
        tables = {f"s{i}": {"command": [PY]} for i in range(3)}
        with self.assertRaises(ConfigError) as caught:
            parse_command_sensors(tables, 2)
        self.assertIn("at most 2", str(caught.exception))

    def test_wiring_raises_config_error(self) -> None:
        config = Config(extra={"sensors": {"fan": {"command": ["relative"]}}})
        with self.assertRaises(ConfigError) as caught:
            sensors_service(config, reactor)
        self.assertIn("[sensors.fan]", str(caught.exception))

    def test_validator_from_toml(self) -> None:
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write('[sensors.fan]\ncommand = ["/usr/bin/vcgencmd", "measure_temp"]\n')
            f.write('pattern = "temp=(\\\\d+"\n')
        with self.assertRaises(ConfigError) as caught:
            build_config({"config": path}, (check_sensors,))
        self.assertIn("[sensors.fan]", str(caught.exception))

    def test_sensor_roots(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            check_sensors(Config(sensor_root=("/sys", "relative/dir")))
        self.assertIn(
            "--sensor-root 'relative/dir': must be an absolute path", str(caught.exception)
        )
        from pistatsd.sensors import confine

        config = Config(sensor_root=("/proc/1/root",))

        def refused(path: str) -> str:
            raise PermissionError(13, "Permission denied", path)

        self.patch(confine.os.path, "realpath", refused)
        with self.assertRaises(ConfigError) as caught:
            check_sensors(config)
        self.assertIn("--sensor-root '/proc/1/root': cannot be resolved", str(caught.exception))

    def test_wiring_builds_a_service(self) -> None:
        state = os.path.abspath(self.mktemp())
        config = Config(
            state_dir=state,
            sensor_root=(state,),
            sample_interval=1.0,
            extra={"sensors": {"fan": {"command": [PY, "-c", "print(1)"]}}},
        )
        service = sensors_service(config, reactor)
        self.assertEqual(service.interval, 5.0)
        self.assertIsNotNone(service.sensor("fan"))
        self.assertEqual(service.readings(), {"fan": None})


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
