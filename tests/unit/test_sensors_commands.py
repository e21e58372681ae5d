"""Command sensors without processes: the worker-thread runner on the real
reactor, a stopped runner, and start-up validation of the TOML C{[sensors.NAME]} tables."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.config import Config, ConfigError, build_config
from pistatsd.sensors.commands import CommandFailed, CommandRunner
from pistatsd.sensors.confine import Confinement
from pistatsd.sensors.model import FileSensor, parse_command_sensors
from pistatsd.sensors.service import SensorsService
from pistatsd.sensors.store import SensorStore
from pistatsd.sensors.threads import ThreadedRunner
from pistatsd.sensors.wiring import check_sensors, sensors_service
from tests.command_sensors import PY, make_service, python, read_only_site, within
from tests.support import request


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
