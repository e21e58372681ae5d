"""The MQTT options: defaults, and every bad value stopping start-up with one line."""

from __future__ import annotations

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.config import build_config
from pistatsd.errors import StartupError
from pistatsd.mqtt.settings import Broker, check_topic_prefix, default_prefix, parse_broker_url
from pistatsd.startup import load
from pistatsd.tap import Options


class BrokerURLTests(SynchronousTestCase):
    def test_default_ports(self) -> None:
        self.assertEqual(parse_broker_url("mqtt://broker"), Broker("broker", 1883, False))
        self.assertEqual(parse_broker_url("mqtts://broker"), Broker("broker", 8883, True))

    def test_explicit_port_and_ipv6(self) -> None:
        self.assertEqual(parse_broker_url("mqtt://10.0.0.2:1884/"), Broker("10.0.0.2", 1884, False))
        self.assertEqual(parse_broker_url("mqtts://[::1]:8884"), Broker("::1", 8884, True))
        self.assertEqual(str(Broker("::1", 8884, True)), "[::1]:8884")

    def test_bad_urls(self) -> None:
        for url, why in [
            ("http://broker", "mqtt:// or mqtts://"),
            ("broker:1883", "mqtt:// or mqtts://"),
            ("mqtt://", "no host"),
            ("mqtt://broker:0", "bad port"),
            ("mqtt://broker:99999", "bad port"),
            ("mqtt://broker:x", "bad port"),
            ("mqtt://broker/topic", "no path"),
            ("mqtt://::1", "[ ]"),
        ]:
            with self.subTest(url=url):
                e = self.assertRaises(ValueError, parse_broker_url, url)
                self.assertIn(why, str(e))

    def test_credentials_in_url_are_refused_without_echoing_them(self) -> None:
        e = self.assertRaises(ValueError, parse_broker_url, "mqtt://pi:s3cret@broker")
        self.assertIn("--mqtt-user", str(e))
        self.assertNotIn("s3cret", str(e))


class PrefixTests(SynchronousTestCase):
    def test_good(self) -> None:
        self.assertEqual(check_topic_prefix("home/pi-4"), "home/pi-4")

    def test_bad(self) -> None:
        for prefix in ["", "a/+/b", "a/#", "/a", "a/", "a//b", "$SYS/x"]:
            with self.subTest(prefix=prefix):
                self.assertRaises(ValueError, check_topic_prefix, prefix)

    def test_default_prefix_is_one_safe_level(self) -> None:
        self.assertEqual(default_prefix("pi"), "pistatsd/pi")
        self.assertEqual(default_prefix("a+b#c/d"), "pistatsd/a_b_c_d")


class OptionsTests(SynchronousTestCase):
    def refused(self, *argv: str) -> str:
        e = self.assertRaises(usage.UsageError, Options().parseOptions, list(argv))
        return str(e)

    def test_defaults(self) -> None:
        config = build_config({}, environ={})
        self.assertIsNone(config.mqtt)
        self.assertEqual(config.mqtt_interval, 30.0)
        self.assertEqual(config.mqtt_discovery_prefix, "homeassistant")
        self.assertIsNone(config.mqtt_prefix)

    def test_all_options(self) -> None:
        options = Options()
        options.parseOptions(
            [
                "--mqtt",
                "mqtt://broker:1884",
                "--mqtt-user",
                "pi",
                "--mqtt-prefix",
                "home/pi",
                "--mqtt-interval",
                "5",
                "--mqtt-discovery-prefix",
                "",
                "--mqtt-dashboard-url",
                "https://pi.home.arpa:8443/",
            ]
        )
        config = options.config
        assert config is not None
        self.assertEqual(config.mqtt, "mqtt://broker:1884")
        self.assertEqual(config.mqtt_user, "pi")
        self.assertEqual(config.mqtt_prefix, "home/pi")
        self.assertEqual(config.mqtt_interval, 5.0)
        self.assertEqual(config.mqtt_discovery_prefix, "")
        self.assertEqual(config.mqtt_dashboard_url, "https://pi.home.arpa:8443")

    def test_bad_scheme(self) -> None:
        message = self.refused("--mqtt", "tcp://broker")
        self.assertIn("--mqtt:", message)
        self.assertIn("mqtt:// or mqtts://", message)

    def test_userinfo_in_url(self) -> None:
        message = self.refused("--mqtt", "mqtt://pi:hunter2@broker")
        self.assertIn("--mqtt-user", message)
        self.assertNotIn("hunter2", message)

    def test_missing_cafile(self) -> None:
        message = self.refused("--mqtt", "mqtts://broker", "--mqtt-cafile", "/nonexistent/ca.pem")
        self.assertEqual(message, "--mqtt-cafile /nonexistent/ca.pem: no such file")

    def test_cafile_without_a_certificate(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("not a certificate\n")
        message = self.refused("--mqtt", "mqtts://broker", "--mqtt-cafile", path)
        self.assertEqual(message, f"--mqtt-cafile {path}: no PEM certificate in it")

    def test_cafile_needs_mqtts(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("x")
        self.assertIn("mqtts://", self.refused("--mqtt", "mqtt://broker", "--mqtt-cafile", path))

    def test_bad_prefixes(self) -> None:
        for option, value in [
            ("--mqtt-prefix", "a/+"),
            ("--mqtt-prefix", "a//b"),
            ("--mqtt-prefix", "a/#"),
            ("--mqtt-discovery-prefix", "ha/"),
        ]:
            with self.subTest(option=option, value=value):
                message = self.refused("--mqtt", "mqtt://broker", option, value)
                self.assertIn(option + ":", message)

    def test_interval_bounds(self) -> None:
        self.assertIn("below the minimum", self.refused("--mqtt-interval", "0.5"))

    def test_password_from_file_never_in_repr(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("s3cret\n")
        config = load(
            {"mqtt": "mqtt://broker", "mqtt-user": "pi", "mqtt-password-file": path}, environ={}
        )
        self.assertEqual(config.mqtt_password, "s3cret")
        self.assertNotIn("s3cret", repr(config))

    def test_password_from_environment(self) -> None:
        config = load(
            {"mqtt": "mqtt://broker", "mqtt-user": "pi"},
            environ={"PISTATSD_MQTT_PASSWORD": "envpw"},
        )
        self.assertEqual(config.mqtt_password, "envpw")

    def test_password_needs_user(self) -> None:
        e = self.assertRaises(
            StartupError,
            load,
            {"mqtt": "mqtt://broker"},
            environ={"PISTATSD_MQTT_PASSWORD": "pw"},
        )
        self.assertIn("needs --mqtt-user", str(e))

    def test_password_must_be_ascii(self) -> None:
        e = self.assertRaises(
            StartupError,
            load,
            {"mqtt": "mqtt://broker", "mqtt-user": "pi"},
            environ={"PISTATSD_MQTT_PASSWORD": "pässword"},
        )
        self.assertIn("ASCII", str(e))
        self.assertNotIn("pässword", str(e))

    def test_toml(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('mqtt = "mqtts://broker"\nmqtt-discovery-prefix = ""\nmqtt-interval = 10\n')
        config = load({"config": path}, environ={})
        self.assertEqual(config.mqtt, "mqtts://broker")
        self.assertEqual(config.mqtt_discovery_prefix, "")
        self.assertEqual(config.mqtt_interval, 10.0)
