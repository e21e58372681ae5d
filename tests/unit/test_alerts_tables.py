"""The [alerts.NAME] tables (SPEC §13): what is accepted, what is refused and how it is said,
and how a table named like a built-in changes or turns off that rule."""

from __future__ import annotations

import os
import re
import tomllib

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.alerts.builtin import BUILTINS
from pistatsd.alerts.rules import Becomes, Grows, PatternReader, SeriesReader, Threshold
from pistatsd.alerts.tables import MAX_RULES, parse_rules
from pistatsd.errors import StartupError
from pistatsd.tap import Options

BUILTIN_NAMES = [b.name for b in BUILTINS]


def refused(case: SynchronousTestCase, tables: object) -> str:
    with case.assertRaises(StartupError) as caught:
        parse_rules(tables)
    message = str(caught.exception)
    case.assertNotIn("\n", message)
    case.assertTrue(message.startswith("--config: [alerts"), message)
    return message


class DefaultsTests(SynchronousTestCase):
    def test_no_table_gives_every_builtin(self) -> None:
        rules = parse_rules(None)
        self.assertEqual([r.name for r in rules], BUILTIN_NAMES)
        self.assertEqual(
            BUILTIN_NAMES,
            [
                "undervoltage",
                "throttled",
                "temperature",
                "filesystem-full",
                "filesystem-read-only",
                "memory",
                "sensor-failing",
                "influx-dropping",
            ],
        )

    def test_builtin_thresholds_are_the_documented_ones(self) -> None:
        rules = {r.name: r for r in parse_rules({})}
        temperature = rules["temperature"]
        self.assertEqual(temperature.condition, Threshold(80.0, 75.0, above=True))
        self.assertEqual((temperature.hold, temperature.severity), (60.0, "critical"))
        self.assertEqual(temperature.series, "temperature.celsius")
        full = rules["filesystem-full"]
        self.assertEqual(full.condition, Threshold(90.0, 85.0))
        self.assertTrue(full.pattern)
        self.assertIsInstance(full.reader, PatternReader)
        memory = rules["memory"]
        self.assertEqual((memory.condition, memory.hold), (Threshold(90.0, 90.0), 300.0))
        self.assertEqual(rules["sensor-failing"].hold, 300.0)
        self.assertIsInstance(rules["filesystem-read-only"].condition, Becomes)
        self.assertIsInstance(rules["influx-dropping"].condition, Grows)
        self.assertEqual(rules["undervoltage"].series, "throttled.under_voltage")

    def test_a_user_rule(self) -> None:
        rules = parse_rules(
            {
                "hot": {
                    "series": "sensors.room",
                    "above": 30,
                    "for": 2.5,
                    "clear": 28,
                    "severity": "critical",
                }
            }
        )
        hot = rules[-1]
        self.assertEqual(hot.name, "hot")
        self.assertEqual(hot.condition, Threshold(30.0, 28.0, above=True))
        self.assertEqual((hot.hold, hot.severity, hot.pattern), (2.5, "critical", False))
        self.assertIsInstance(hot.reader, SeriesReader)

    def test_below_with_its_clear_above(self) -> None:
        cold = parse_rules({"cold": {"series": "sensors.room", "below": 5, "clear": 7}})[-1]
        self.assertEqual(cold.condition, Threshold(5.0, 7.0, above=False))
        self.assertEqual(cold.severity, "warning")
        self.assertEqual(cold.hold, 0.0)

    def test_disabled_user_rule_is_left_out(self) -> None:
        rules = parse_rules({"x": {"series": "cpu.percent", "above": 1, "enabled": False}})
        self.assertEqual([r.name for r in rules], BUILTIN_NAMES)


class BuiltinOverrideTests(SynchronousTestCase):
    def test_disable(self) -> None:
        rules = parse_rules({"memory": {"enabled": False}, "temperature": {"enabled": False}})
        names = [r.name for r in rules]
        self.assertNotIn("memory", names)
        self.assertNotIn("temperature", names)
        self.assertIn("filesystem-full", names)

    def test_new_threshold_replaces_the_old_clear(self) -> None:
        rules = {r.name: r for r in parse_rules({"temperature": {"above": 70}})}
        temperature = rules["temperature"]
        self.assertEqual(temperature.condition, Threshold(70.0, 70.0))
        self.assertEqual((temperature.hold, temperature.severity), (60.0, "critical"))

    def test_other_keys_keep_the_rest(self) -> None:
        rules = {r.name: r for r in parse_rules({"memory": {"for": 10, "severity": "critical"}})}
        memory = rules["memory"]
        self.assertEqual(memory.condition, Threshold(90.0, 90.0))
        self.assertEqual((memory.hold, memory.severity), (10.0, "critical"))

    def test_clear_alone_keeps_the_threshold(self) -> None:
        rules = {r.name: r for r in parse_rules({"filesystem-full": {"clear": 80}})}
        self.assertEqual(rules["filesystem-full"].condition, Threshold(90.0, 80.0))

    def test_special_builtins_change_for_and_severity_only(self) -> None:
        rules = {r.name: r for r in parse_rules({"sensor-failing": {"for": 5}})}
        self.assertEqual(rules["sensor-failing"].hold, 5.0)
        message = refused(self, {"sensor-failing": {"above": 3}})
        self.assertEqual(
            message,
            "--config: [alerts.sensor-failing] above: cannot be changed for this built-in "
            "rule (enabled, for, severity can)",
        )
        refused(self, {"influx-dropping": {"series": "cpu.percent"}})


class RefusalTests(SynchronousTestCase):
    def test_not_a_number(self) -> None:
        self.assertEqual(
            refused(self, {"hot": {"series": "sensors.room", "above": "x"}}),
            '--config: [alerts.hot] above: must be a number, not "x"',
        )

    def test_booleans_and_nan_are_not_numbers(self) -> None:
        refused(self, {"hot": {"series": "sensors.room", "above": True}})
        self.assertIn(
            "for: must be a number",
            refused(self, {"hot": {"series": "sensors.room", "above": 1, "for": float("nan")}}),
        )

    def test_unknown_key(self) -> None:
        message = refused(self, {"hot": {"series": "sensors.room", "above": 1, "treshold": 2}})
        self.assertTrue(message.startswith("--config: [alerts.hot] treshold: unknown key"))

    def test_both_and_neither(self) -> None:
        self.assertEqual(
            refused(self, {"hot": {"series": "sensors.room", "above": 1, "below": 0}}),
            "--config: [alerts.hot] below: give above or below, not both",
        )
        self.assertEqual(
            refused(self, {"hot": {"series": "sensors.room"}}),
            "--config: [alerts.hot]: needs above = N or below = N",
        )

    def test_clear_on_the_wrong_side(self) -> None:
        self.assertEqual(
            refused(self, {"hot": {"series": "sensors.room", "above": 80, "clear": 85}}),
            "--config: [alerts.hot] clear: must not be above the threshold (above = 80), not 85",
        )
        self.assertIn(
            "clear: must not be below the threshold",
            refused(self, {"cold": {"series": "sensors.room", "below": 5, "clear": 1}}),
        )

    def test_series_missing_or_bad(self) -> None:
        self.assertIn("needs series", refused(self, {"hot": {"above": 1}}))
        for series in ("", "cpu", "cpu.", "bogus.percent", "filesystems.*.*", 3, "x\ty.z"):
            message = refused(self, {"hot": {"series": series, "above": 1}})
            self.assertIn("[alerts.hot] series:", message)
        self.assertIn(
            "unknown part",
            refused(self, {"hot": {"series": "*.percent", "above": 1}}),
        )
        self.assertIn(
            "longer than",
            refused(self, {"hot": {"series": "sensors." + "a" * 300, "above": 1}}),
        )

    def test_bad_names(self) -> None:
        for name in ("", "a:b", "a b", "-x", "x" * 65, "é"):
            message = refused(self, {name: {"series": "cpu.percent", "above": 1}})
            self.assertIn("a rule name is", message)

    def test_not_tables(self) -> None:
        self.assertIn("must be a table of rule tables", refused(self, [1]))
        self.assertEqual(
            refused(self, {"hot": 3}), "--config: [alerts.hot]: must be a table, not 3"
        )

    def test_severity_enabled_for(self) -> None:
        self.assertIn(
            'severity: must be "warning" or "critical", not "urgent"',
            refused(self, {"hot": {"series": "cpu.percent", "above": 1, "severity": "urgent"}}),
        )
        self.assertIn(
            "enabled: must be true or false",
            refused(self, {"hot": {"series": "cpu.percent", "above": 1, "enabled": "no"}}),
        )
        self.assertIn(
            "for: must be from 0 to",
            refused(self, {"hot": {"series": "cpu.percent", "above": 1, "for": -1}}),
        )

    def test_a_disabled_table_is_still_checked(self) -> None:
        refused(self, {"hot": {"series": "cpu.percent", "above": "x", "enabled": False}})

    def test_too_many_rules(self) -> None:
        tables = {f"r{i}": {"series": "cpu.percent", "above": i} for i in range(MAX_RULES + 1)}
        self.assertEqual(
            refused(self, tables), f"--config: [alerts]: {MAX_RULES + 1} rules; at most {MAX_RULES}"
        )
        tables.pop("r0")
        self.assertEqual(len(parse_rules(tables)), len(BUILTINS) + MAX_RULES)


class StartupTests(SynchronousTestCase):
    """A bad table stops start-up as a usage error, through the options."""

    def write(self, text: str) -> str:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_bad_table_is_a_usage_error(self) -> None:
        path = self.write('[alerts.hot]\nseries = "sensors.room"\nabove = "x"\n')
        options = Options()
        with self.assertRaises(usage.UsageError) as caught:
            options.parseOptions(["--config", path, "--state-dir", self.mktemp()])
        self.assertEqual(
            str(caught.exception), '--config: [alerts.hot] above: must be a number, not "x"'
        )

    def test_good_table_passes(self) -> None:
        path = self.write('[alerts.hot]\nseries = "sensors.room"\nabove = 30\nfor = 2\n')
        options = Options()
        options.parseOptions(["--config", path, "--state-dir", self.mktemp()])
        assert options.config is not None
        self.assertIn("hot", options.config.extra["alerts"])

    def test_the_shipped_example_parses(self) -> None:
        """The commented [alerts] examples of etc/pistatsd.toml, uncommented, are valid."""
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        with open(os.path.join(here, "etc", "pistatsd.toml")) as f:
            text = f.read()
        lines = text[text.index("# --- Alerts") :].splitlines()
        block = "\n".join(
            line[2:] for line in lines if re.match(r"# (\[alerts\.|[a-z-]+ = )", line)
        )
        tables = tomllib.loads(block)["alerts"]
        self.assertEqual(sorted(tables), ["memory", "temperature", "wifi-weak"])
        rules = {r.name: r for r in parse_rules(tables)}
        self.assertNotIn("memory", rules)
        self.assertEqual(rules["temperature"].condition, Threshold(75.0, 70.0))
        self.assertTrue(rules["wifi-weak"].pattern)
