"""Configuration: defaults, TOML, precedence and every kind of bad value."""

from __future__ import annotations

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.config import Config, ConfigError, build_config, default_state_dir, default_www
from pistatsd.tap import Options


class BuildConfigTests(SynchronousTestCase):
    def write(self, text: str) -> str:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_defaults(self) -> None:
        config = build_config({})
        self.assertEqual(config.port, ("tcp:8888",))
        self.assertEqual(config.sample_interval, 1.0)
        self.assertEqual(config.max_body, 65536)
        self.assertEqual(config.max_connections, 1024)
        self.assertEqual(config.heartbeat, 60.0)
        self.assertIsNone(config.access_log)
        self.assertEqual(config.www, default_www())

    def test_toml_values(self) -> None:
        path = self.write(
            'port = ["tcp:9000", "unix:/tmp/x.sock"]\nsample-interval = 0.5\nmax-body = 10\n'
        )
        config = build_config({"config": path})
        self.assertEqual(config.port, ("tcp:9000", "unix:/tmp/x.sock"))
        self.assertEqual(config.sample_interval, 0.5)
        self.assertEqual(config.max_body, 10)
        self.assertEqual(config.config, path)

    def test_toml_single_string_for_repeatable(self) -> None:
        config = build_config({"config": self.write('port = "tcp:9001"\n')})
        self.assertEqual(config.port, ("tcp:9001",))

    def test_command_line_wins(self) -> None:
        path = self.write('port = ["tcp:9000"]\nheartbeat = 5\n')
        config = build_config({"config": path, "port": ["tcp:9100"], "heartbeat": "7"})
        self.assertEqual(config.port, ("tcp:9100",))
        self.assertEqual(config.heartbeat, 7.0)

    def test_unknown_toml_key(self) -> None:
        e = self.assertRaises(ConfigError, build_config, {"config": self.write("bogus = 1\n")})
        self.assertIn("unknown key 'bogus'", str(e))

    def test_bad_toml(self) -> None:
        e = self.assertRaises(ConfigError, build_config, {"config": self.write("port = [\n")})
        self.assertIn("not valid TOML", str(e))

    def test_missing_toml(self) -> None:
        e = self.assertRaises(ConfigError, build_config, {"config": "/nonexistent/x.toml"})
        self.assertIn("cannot read", str(e))

    def test_out_of_range(self) -> None:
        for name, value in [
            ("sample-interval", "0"),
            ("sample-interval", "-1"),
            ("sample-interval", "nan"),
            ("heartbeat", "-5"),
            ("max-body", "0"),
            ("max-connections", "abc"),
            ("max-body", "1.5"),
        ]:
            e = self.assertRaises(ConfigError, build_config, {name: value})
            self.assertIn(f"--{name}", str(e))

    def test_wrong_type_in_toml(self) -> None:
        path = self.write('max-body = "lots"\n')
        e = self.assertRaises(ConfigError, build_config, {"config": path})
        self.assertIn("--max-body", str(e))
        self.assertIn(path, str(e))

    def test_boolean_is_not_a_number(self) -> None:
        path = self.write("heartbeat = true\n")
        self.assertRaises(ConfigError, build_config, {"config": path})

    def test_immutable(self) -> None:
        config = Config()
        self.assertRaises(AttributeError, setattr, config, "max_body", 1)

    def test_state_dir(self) -> None:
        self.assertEqual(default_state_dir({}, euid=0), "/var/lib/pistatsd")
        self.assertEqual(
            default_state_dir({"XDG_STATE_HOME": "/x/state"}, euid=1000), "/x/state/pistatsd"
        )
        self.assertEqual(
            default_state_dir({"HOME": "/home/pi"}, euid=1000), "/home/pi/.local/state/pistatsd"
        )


class OptionsTests(SynchronousTestCase):
    def parse(self, *argv: str) -> Options:
        options = Options()
        options.parseOptions(list(argv))
        return options

    def test_repeatable_port(self) -> None:
        options = self.parse("--port", "tcp:0", "--port", "unix:/tmp/pistatsd-test.sock")
        self.assertEqual(options.config.port, ("tcp:0", "unix:/tmp/pistatsd-test.sock"))

    def test_unknown_option(self) -> None:
        self.assertRaises(usage.UsageError, self.parse, "--bogus")

    def test_unparsable_endpoint(self) -> None:
        e = self.assertRaises(usage.UsageError, self.parse, "--port", "tcp:notaport")
        self.assertIn("--port tcp:notaport", str(e))

    def test_port_number_out_of_range(self) -> None:
        for description in ("tcp:99999999", "tcp6:65536:interface=\\:\\:1"):
            e = self.assertRaises(usage.UsageError, self.parse, "--port", description)
            self.assertIn(f"--port {description}", str(e))
            self.assertIn("out of range", str(e))
        self.assertEqual(self.parse("--port", "tcp:65535").config.port, ("tcp:65535",))

    def test_unknown_endpoint_type(self) -> None:
        e = self.assertRaises(usage.UsageError, self.parse, "--port", "carrierpigeon:1")
        self.assertIn("--port carrierpigeon:1", str(e))

    def test_interval_out_of_range(self) -> None:
        e = self.assertRaises(usage.UsageError, self.parse, "--sample-interval", "0")
        self.assertIn("--sample-interval", str(e))

    def test_missing_www(self) -> None:
        e = self.assertRaises(usage.UsageError, self.parse, "--www", "/nonexistent/www")
        self.assertIn("--www", str(e))

    def test_access_log_directory_missing(self) -> None:
        e = self.assertRaises(usage.UsageError, self.parse, "--access-log", "/nonexistent/a.log")
        self.assertIn("--access-log", str(e))

    def test_config_file_via_option(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('port = ["tcp:0"]\nmax-connections = 7\n')
        options = self.parse("--config", path, "--max-connections", "9")
        self.assertEqual(options.config.port, ("tcp:0",))
        self.assertEqual(options.config.max_connections, 9)

    def test_every_option_is_documented_in_example_toml(self) -> None:
        import os

        from pistatsd.config import OPTIONS

        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        with open(os.path.join(here, "etc", "pistatsd.toml")) as f:
            text = f.read()
        for spec in OPTIONS:
            self.assertIn(f"# {spec.name} =", text)


class SecretsAndFlagsTests(SynchronousTestCase):
    def test_secret_from_file_not_in_repr(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("hunter2\n")
        config = build_config({"influx-password-file": path}, environ={})
        self.assertEqual(config.influx_password, "hunter2")
        self.assertNotIn("hunter2", repr(config))

    def test_secret_from_environment(self) -> None:
        config = build_config(
            {}, environ={"PISTATSD_API_TOKEN": "tok", "PISTATSD_INFLUX_TOKEN": "t2"}
        )
        self.assertEqual((config.api_token, config.influx_token), ("tok", "t2"))

    def test_unreadable_secret_file(self) -> None:
        e = self.assertRaises(
            ConfigError, build_config, {"api-token-file": "/nonexistent/t"}, environ={}
        )
        self.assertIn("--api-token-file", str(e))

    def test_flag_on_command_line_and_in_toml(self) -> None:
        options = Options()
        options.parseOptions(["--influx-create-db"])
        self.assertTrue(options.config.influx_create_db)
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("influx-create-db = true\n")
        self.assertTrue(build_config({"config": path}).influx_create_db)

    def test_repeatable_options_on_command_line(self) -> None:
        options = Options()
        options.parseOptions(
            [
                "--allowed-origin",
                "https://a:443",
                "--allowed-origin",
                "https://b:*",
                "--sensor-root",
                "/tmp",
            ]
        )
        self.assertEqual(options.config.allowed_origin, ("https://a:443", "https://b:*"))
        self.assertEqual(options.config.sensor_root, ("/tmp",))

    def test_allowed_host(self) -> None:
        options = Options()
        options.parseOptions(["--allowed-host", "Pi.Example:8888", "--allowed-host", ".home.arpa"])
        self.assertEqual(options.config.allowed_host, ("pi.example", ".home.arpa"))
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('allowed-host = ["*", "[::2]"]\n')
        self.assertEqual(build_config({"config": path}).allowed_host, ("*", "::2"))
        for bad in ("a b", "*.example.org", "http://pi"):
            e = self.assertRaises(ConfigError, build_config, {"allowed-host": [bad]})
            self.assertIn("--allowed-host", str(e))
            self.assertIn(".domain", str(e))

    def test_influx_url_checked(self) -> None:
        e = self.assertRaises(ConfigError, build_config, {"influx": "localhost:8086"})
        self.assertIn("--influx", str(e))
        self.assertEqual(
            build_config({"influx": "http://localhost:8086/"}).influx, "http://localhost:8086"
        )

    def test_sensor_table_passes_through(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('[sensors.fan]\ncommand = ["/bin/echo", "5"]\n')
        config = build_config({"config": path})
        self.assertEqual(config.extra["sensors"]["fan"]["command"], ["/bin/echo", "5"])


class DocumentationTests(SynchronousTestCase):
    def test_every_option_is_in_the_readme(self) -> None:
        import os

        from pistatsd.config import OPTIONS

        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        with open(os.path.join(here, "README.md")) as f:
            text = f.read()
        for spec in OPTIONS:
            self.assertIn(f"`--{spec.name}", text)


class BacklogTests(SynchronousTestCase):
    def test_default_backlog_added(self) -> None:
        from pistatsd.web.wiring import with_backlog

        self.assertEqual(with_backlog("tcp:8888"), "tcp:8888:backlog=1024")
        self.assertEqual(with_backlog("ssl:8443"), "ssl:8443:backlog=1024")
        self.assertEqual(with_backlog("tcp:8888:backlog=5"), "tcp:8888:backlog=5")
        self.assertEqual(with_backlog("unix:/x.sock"), "unix:/x.sock")
        self.assertEqual(with_backlog("systemd:domain=INET:index=0"), "systemd:domain=INET:index=0")


class StrictNumberTests(SynchronousTestCase):
    """Option values are read with L{pistatsd.numbers}, not C{float()}/C{int()}."""

    def parse(self, *argv: str) -> Options:
        options = Options()
        options.parseOptions(list(argv))
        return options

    def test_what_python_alone_reads_as_a_number_is_refused(self) -> None:
        for name, value in [
            ("sample-interval", "1_0"),
            ("sample-interval", " 5"),
            ("sample-interval", "5 "),
            ("sample-interval", "\u0663"),
            ("heartbeat", "inf"),
            ("max-body", "1_000"),
            ("max-body", "+ 7"),
            ("max-connections", "\u0663"),
        ]:
            e = self.assertRaises(usage.UsageError, self.parse, f"--{name}", value)
            self.assertIn(f"--{name}", str(e))

    def test_numbers_as_people_write_them(self) -> None:
        options = self.parse("--sample-interval", "2.5", "--heartbeat", "1e1", "--max-body", "1000")
        self.assertEqual(options.config.sample_interval, 2.5)
        self.assertEqual(options.config.heartbeat, 10.0)
        self.assertEqual(options.config.max_body, 1000)

    def test_toml_numbers_are_toml_numbers(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('max-body = 1_000\nsample-interval = 2\nheartbeat = "1_0"\n')
        e = self.assertRaises(ConfigError, build_config, {"config": path})
        self.assertIn("--heartbeat", str(e))
        with open(path, "w") as f:
            f.write("max-body = 1_000\nsample-interval = 2\n")
        config = build_config({"config": path})
        self.assertEqual((config.max_body, config.sample_interval), (1000, 2.0))


class StartupErrorTests(SynchronousTestCase):
    def test_one_class_for_every_start_up_failure(self) -> None:
        from pistatsd.errors import StartupError

        e = self.assertRaises(StartupError, build_config, {"max-body": "0"})
        self.assertIsInstance(e, SystemExit)
        self.assertIsInstance(e, Exception)
        self.assertIs(ConfigError, StartupError)
        self.assertEqual(str(e), e.code)


class TacTests(SynchronousTestCase):
    """C{etc/pistatsd.tac} runs the same checks as the plugin's options."""

    def run_tac(self, toml: str) -> None:
        import os
        import runpy

        path = self.mktemp()
        with open(path, "w") as f:
            f.write(toml)
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.patch(os, "environ", {**os.environ, "PISTATSD_CONFIG": path})
        runpy.run_path(os.path.join(here, "etc", "pistatsd.tac"))

    def test_bad_endpoint_stops_the_tac(self) -> None:
        from pistatsd.errors import StartupError

        e = self.assertRaises(StartupError, self.run_tac, 'port = ["carrierpigeon:1"]\n')
        self.assertIn("--port carrierpigeon:1", str(e))

    def test_bad_sensor_table_stops_the_tac(self) -> None:
        from pistatsd.errors import StartupError

        e = self.assertRaises(StartupError, self.run_tac, "[sensors.fan]\ncommand = 42\n")
        self.assertIn("[sensors.fan]", str(e))

    def test_relative_sensor_root_stops_the_tac(self) -> None:
        from pistatsd.errors import StartupError

        e = self.assertRaises(StartupError, self.run_tac, 'sensor-root = ["sys"]\n')
        self.assertIn("--sensor-root", str(e))

    def test_missing_certificate_stops_the_tac(self) -> None:
        from pistatsd.errors import StartupError

        e = self.assertRaises(
            StartupError,
            self.run_tac,
            'port = ["tcp:0:interface=127.0.0.1"]\ntls = ["ssl:0"]\n'
            'cert = "/nonexistent/c.pem"\nkey = "/nonexistent/k.pem"\n',
        )
        self.assertIn("--tls ssl:0", str(e))
