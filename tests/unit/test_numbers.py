"""The strict number syntax shared by query arguments and the client."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pistatsd.numbers import decimal_float, finite_float, integer, plain, plain_decimal

#: What Python's float()/int() accept and a person does not mean as a number.
PYTHON_ONLY = ["1_0", "1_000.5", " 1", "1 ", "\t1", "1\n", "\u0663", "\uff11", "0x1", "0b1", "1j"]
NOT_NUMBERS = ["", "abc", "-", ".", "1..2", "1.2.3", "e5", "1e", "--1", "+-1", *PYTHON_ONLY]
NON_FINITE = ["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e999", "9" * 400]


class PlainDecimalTests(SynchronousTestCase):
    def test_accepted(self) -> None:
        for text, value in [("0", 0.0), ("10", 10.0), ("0.5", 0.5), ("007.250", 7.25)]:
            self.assertEqual(plain_decimal(text), value, text)
            self.assertEqual(plain_decimal(text.encode()), value, text)

    def test_refused(self) -> None:
        signed_or_exponent = ["-1", "+1", "1e0", "1E1", "1.", ".5"]
        for text in [*NOT_NUMBERS, *NON_FINITE, *signed_or_exponent]:
            self.assertIsNone(plain_decimal(text), repr(text))
            self.assertIsNone(plain_decimal(text.encode("utf-8")), repr(text))


class FiniteFloatTests(SynchronousTestCase):
    def test_accepted(self) -> None:
        cases = [
            ("3", 3.0),
            ("-2", -2.0),
            ("+2.5", 2.5),
            ("1e3", 1000.0),
            ("-2.5E-3", -0.0025),
            ("5.", 5.0),
            (".5", 0.5),
            (repr(1e20), 1e20),
            (repr(-1e-7), -1e-7),
        ]
        for text, value in cases:
            self.assertEqual(finite_float(text), value, text)
            self.assertEqual(finite_float(text.encode()), value, text)

    def test_refused(self) -> None:
        for text in [*NOT_NUMBERS, *NON_FINITE]:
            self.assertIsNone(finite_float(text), repr(text))

    def test_syntax_apart_from_size(self) -> None:
        self.assertEqual(decimal_float("1e999"), float("inf"))
        self.assertIsNone(decimal_float("inf"))
        self.assertIsNone(decimal_float("1_0"))


class IntegerTests(SynchronousTestCase):
    def test_integer(self) -> None:
        self.assertEqual([integer(t) for t in ("0", "-12", "+3")], [0, -12, 3])
        for text in ["1.0", "1e3", *NOT_NUMBERS]:
            self.assertIsNone(integer(text), repr(text))
        self.assertEqual(integer("9" * 400), int("9" * 400))
        self.assertIsNone(integer("9" * 5000))  # beyond what int() converts


class PlainTests(SynchronousTestCase):
    def test_round_trips_without_exponent(self) -> None:
        for value in (0.5, 10.0, 1e-05, 1e-7, 0.1 + 0.2, 3.0, 1e17):
            text = plain(value)
            self.assertNotIn("e", text)
            self.assertEqual(plain_decimal(text), value, text)
        self.assertEqual(plain(10.0), "10")
        self.assertEqual(plain(1e-05), "0.00001")

    def test_no_plain_form(self) -> None:
        for value in (-1.0, float("nan"), float("inf")):
            with self.assertRaises(ValueError):
                plain(value)
