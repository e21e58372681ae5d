"""Line protocol: escaping per position, field types, and the spool's validity check."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pistatsd.influx.lineprotocol import (
    Point,
    escape_key,
    escape_measurement,
    escape_string_field,
    format_field_value,
    is_valid_line,
    timestamp_of,
)


class EscapingTests(SynchronousTestCase):
    def test_measurement_escapes_commas_and_spaces_only(self) -> None:
        self.assertEqual(escape_measurement("my measure,ment=x"), r"my\ measure\,ment=x")

    def test_keys_escape_commas_equals_and_spaces(self) -> None:
        self.assertEqual(escape_key("a b,c=d"), r"a\ b\,c\=d")

    def test_string_field_escapes_quotes_and_backslashes(self) -> None:
        self.assertEqual(escape_string_field('say "hi" \\o/'), r'"say \"hi\" \\o/"')

    def test_newlines_cannot_end_the_line(self) -> None:
        for escaped in (
            escape_measurement("a\nb"),
            escape_key("a\r\nb"),
            escape_string_field("a\nb"),
        ):
            self.assertNotIn("\n", escaped)
            self.assertNotIn("\r", escaped)

    def test_backslash_before_a_separator_cannot_swallow_it(self) -> None:
        """'a\\' then ',' must not read as an escaped comma: the backslash is doubled."""
        self.assertEqual(escape_key("a\\"), "a\\\\")
        self.assertEqual(escape_key("a\\,b"), "a\\\\\\,b")
        self.assertEqual(escape_key("a\\b"), "a\\b")  # harmless inside: kept as is
        line = Point("m", (("t", "x\\"),), (("v", 1),), 1).line()
        self.assertTrue(is_valid_line(line), line)


class FieldValueTests(SynchronousTestCase):
    def test_types(self) -> None:
        self.assertEqual(format_field_value(3), "3i")
        self.assertEqual(format_field_value(-3), "-3i")
        self.assertEqual(format_field_value(1.5), "1.5")
        self.assertEqual(format_field_value(2.0), "2.0")
        self.assertEqual(format_field_value(True), "true")
        self.assertEqual(format_field_value(False), "false")
        self.assertEqual(format_field_value("x"), '"x"')

    def test_non_finite_floats_cannot_be_written(self) -> None:
        for value in (float("nan"), float("inf"), float("-inf")):
            self.assertIsNone(format_field_value(value))

    def test_other_types_are_refused(self) -> None:
        self.assertRaises(TypeError, format_field_value, [1])  # type: ignore[arg-type]


class PointTests(SynchronousTestCase):
    def test_seed_compatible_line(self) -> None:
        point = Point(
            "requests",
            (("request", "GETs_per_minute"), ("host", "pi")),
            (("requests_number", 7),),
            1700000000000,
        )
        self.assertEqual(
            point.line(),
            "requests,request=GETs_per_minute,host=pi requests_number=7i 1700000000000",
        )

    def test_everything_escaped_in_place(self) -> None:
        point = Point(
            "my m,x",
            (("t k", "v,1=2"),),
            (("f=1", 'a "b"'), ("n", 2)),
            5,
        )
        self.assertEqual(point.line(), r'my\ m\,x,t\ k=v\,1\=2 f\=1="a \"b\"",n=2i 5')
        self.assertTrue(is_valid_line(point.line()))

    def test_of_leaves_out_nulls_and_empty_tags(self) -> None:
        point = Point.of(
            "system", {"host": "pi", "empty": ""}, {"cpu": None, "temp": float("nan"), "m": 1.0}, 9
        )
        assert point is not None
        self.assertEqual(point.line(), "system,host=pi m=1.0 9")

    def test_of_without_fields_is_none(self) -> None:
        self.assertIsNone(Point.of("system", {"host": "pi"}, {"cpu": None}, 9))

    def test_timestamps_are_milliseconds(self) -> None:
        self.assertEqual(timestamp_of(1700000000.1234), 1700000000123)


class ValidityTests(SynchronousTestCase):
    def test_good_lines(self) -> None:
        for line in (
            "m v=1i 1",
            'm,a=b,c=d v=1.5,w=true,s="x y, z=\\"q\\"" 1700000000000',
            r"my\ m,t\,k=v\ 1 f=-1e-05 -5",
            "m v=T 1",
        ):
            self.assertTrue(is_valid_line(line), line)

    def test_bad_lines(self) -> None:
        for line in (
            "",
            "m",
            "m v=1i",  # no timestamp: replaying it would stamp it "now"
            "m v=1i 17000000000x",
            "m,tag v=1 1",
            'm s="unterminated 1',
            "m v=1i 1 trailing",
            "m v= 1",
            "# a comment 1",
            "m v=1i 1700000000000\x00",
        ):
            self.assertFalse(is_valid_line(line), line)

    def test_torn_lines_are_invalid(self) -> None:
        line = Point(
            "requests", (("host", "pi"),), (("requests_number", 12),), 1700000000000
        ).line()
        for cut in range(1, len(line) - len(" 1700000000000")):
            self.assertFalse(is_valid_line(line[:cut]), line[:cut])
