"""/sum over in-memory HTTP: byte-exact answers and every bad input of SPEC §4."""

from __future__ import annotations

import json

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from pistatsd.numbers import finite_float
from pistatsd.web.jsonbody import decode_json_object as parse_json_object
from pistatsd.web.site import PistatsdSite
from pistatsd.web.sum import (
    CONTENT_TYPE_MESSAGE,
    SumResource,
    add,
    finite_number,
    format_total,
)
from tests.support import request


def make_site(max_body: int = 65536) -> PistatsdSite:
    root = Resource()
    root.putChild(b"sum", SumResource())
    return PistatsdSite(root, reactor=Clock(), max_body=max_body)


class FormatTests(SynchronousTestCase):
    def test_integral(self) -> None:
        self.assertEqual(format_total(6.0), "6")
        self.assertEqual(format_total(-0.0), "0")
        self.assertEqual(format_total(-12.0), "-12")

    def test_fractional(self) -> None:
        self.assertEqual(format_total(7.5), "7.5")
        self.assertEqual(format_total(0.1 + 0.2), "0.30000000000000004")

    def test_large(self) -> None:
        self.assertEqual(format_total(1e15), "1000000000000000.0")
        self.assertEqual(format_total(1e16), "1e+16")
        self.assertEqual(format_total(999999999999999.0), "999999999999999")

    def test_query_values(self) -> None:
        values = [b"3", b"3", b"x", b"inf", b"nan", b"-inf", b"", b"1e999", b"1_0", b" 1"]
        self.assertEqual(add(values, finite_float), 6.0)

    def test_json_values(self) -> None:
        values = [1, 2.5, True, None, "3", [4], {"a": 5}, 10**400, float("nan")]
        self.assertEqual(add(values, finite_number), 3.5)


class GetTests(SynchronousTestCase):
    def test_seed_example(self) -> None:
        response = request(make_site(), "GET", "/sum?a=3&b=3&c=x&d=inf")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.body, b"Sum: 6")
        self.assertTrue(response.header("content-type").startswith("text/plain"))

    def test_no_arguments(self) -> None:
        self.assertEqual(request(make_site(), "GET", "/sum").body, b"Sum: 0")

    def test_only_numbers_as_people_write_them(self) -> None:
        """C{1_0} is not ten, nor C{٣} three: Python-only syntax is not a number here."""
        query = "a=1_0&b=%201&c=%D9%A3&d=0x1&e=1e1&f=-2.5&g=.5&h=%2B1"
        self.assertEqual(request(make_site(), "GET", f"/sum?{query}").body, b"Sum: 9")

    def test_repeated_arguments(self) -> None:
        self.assertEqual(request(make_site(), "GET", "/sum?a=1&a=2.5").body, b"Sum: 3.5")

    def test_json_when_preferred(self) -> None:
        response = request(
            make_site(), "GET", "/sum?a=1&b=2", headers={"Accept": "application/json"}
        )
        self.assertEqual(response.header("content-type"), "application/json")
        self.assertEqual(json.loads(response.body), {"sum": 3})

    def test_json_fraction(self) -> None:
        response = request(
            make_site(), "GET", "/sum?a=1.25", headers={"Accept": "application/json"}
        )
        self.assertEqual(json.loads(response.body), {"sum": 1.25})

    def test_head(self) -> None:
        response = request(make_site(), "HEAD", "/sum?a=1")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.header("content-length"), "6")

    def test_overflowing_sum(self) -> None:
        response = request(make_site(), "GET", "/sum?a=1e308&b=1e308")
        self.assertEqual(response.status, 400)


class PostTests(SynchronousTestCase):
    def post(self, body: bytes, ctype: str | None = "application/json", **kw):
        headers = {"Content-Type": ctype} if ctype else {}
        headers.update(kw.pop("headers", {}))
        return request(make_site(**kw), "POST", "/sum", headers=headers, body=body)

    def test_seed_example(self) -> None:
        response = self.post(b'{"a": 3, "b": 4.5}')
        self.assertEqual((response.status, response.body), (200, b"Sum: 7.5"))

    def test_charset_parameter(self) -> None:
        response = self.post(b'{"a": 1}', "Application/JSON; charset=utf-8")
        self.assertEqual(response.body, b"Sum: 1")

    def test_non_numbers_ignored(self) -> None:
        response = self.post(b'{"a": 1, "b": true, "c": "2", "d": null, "e": [3], "f": 1e400}')
        self.assertEqual(response.body, b"Sum: 1")

    def test_wrong_content_types(self) -> None:
        for ctype in [
            None,
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
        ]:
            response = self.post(b'{"a": 1}', ctype)
            self.assertEqual(response.status, 400, ctype)
            self.assertEqual(response.body, CONTENT_TYPE_MESSAGE.encode(), ctype)
            self.assertTrue(response.header("content-type").startswith("text/plain"))

    def test_malformed(self) -> None:
        for body in [
            b"{",
            b"",
            b"[1, 2]",
            b"3",
            b'"x"',
            b'{"a": NaN}',
            b'{"a": Infinity}',
            b"\xff\xfe",
            b'{"a": -Infinity}',
            b"[" * 60000,
        ]:
            response = self.post(body)
            self.assertEqual(response.status, 400, body[:20])
            self.assertTrue(response.body, body[:20])

    def test_error_json_when_preferred(self) -> None:
        response = self.post(b"[1]", headers={"Accept": "application/json"})
        self.assertEqual(response.status, 400)
        self.assertIn("object", json.loads(response.body)["error"])

    def test_too_large(self) -> None:
        response = self.post(b'{"a": 1, "pad": "' + b"x" * 100 + b'"}', max_body=50)
        self.assertEqual(response.status, 413)

    def test_other_methods(self) -> None:
        for method in ["PUT", "DELETE", "PATCH"]:
            response = request(make_site(), method, "/sum")
            self.assertEqual(response.status, 405)
            self.assertEqual(response.header("allow"), "GET, HEAD, POST")

    def test_parse_json_object_messages(self) -> None:
        e = self.assertRaises(ValueError, parse_json_object, b'{"a": 1')
        self.assertIn("malformed JSON", str(e))
        e = self.assertRaises(ValueError, parse_json_object, b'{"a": NaN}')
        self.assertIn("NaN", str(e))
