"""/api/sensors over in-memory HTTP (SPEC §5): CRUD, validation, confinement,
authorisation, text representation, the reading cache and persistence.

Everything here runs on a L{Clock} with inline "threads": no sockets, no
sleeping, no real reactor.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from pistatsd import files as files_module
from pistatsd.sensors import resource as resource_module
from pistatsd.sensors import store as store_module
from pistatsd.sensors.confine import Confinement, ReadError
from pistatsd.sensors.model import FileSensor
from pistatsd.sensors.resource import MutationGuard, SensorsResource, as_text
from pistatsd.sensors.service import SensorsService
from pistatsd.sensors.store import FILENAME, SensorStore
from pistatsd.web.forwarded import is_local_peer
from pistatsd.web.site import PistatsdSite
from tests.support import Response, request

JSON = {"Content-Type": "application/json"}


class Logged:
    """Collects log events for the duration of a test."""

    def __init__(self, case: SynchronousTestCase) -> None:
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        case.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def texts(self, level: LogLevel | None = None) -> list[str]:
        from twisted.logger import formatEvent

        return [formatEvent(e) for e in self.events if level is None or e.get("log_level") == level]


class SensorsCase(SynchronousTestCase):
    """A service on a Clock, a temp sensor root with one sensor file, a site around it."""

    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        self.root = os.path.join(self.base, "root")
        self.outside = os.path.join(self.base, "outside")
        self.state = os.path.join(self.base, "state")
        os.makedirs(self.root)
        os.makedirs(self.outside)
        self.temp = os.path.join(self.root, "temp")
        self.write(self.temp, "21500\n")
        self.clock = Clock()
        self.services: list[SensorsService] = []
        self.start()

    def tearDown(self) -> None:
        for service in self.services:
            if service.running:
                self.successResultOf(service.stopService())

    def write(self, path: str, text: str) -> None:
        with open(path, "w") as f:
            f.write(text)

    def start(
        self, token: str | None = None, roots: list[str] | None = None, **kw: Any
    ) -> SensorsService:
        """(Re)start a service on the same state dir; the site follows it."""
        for service in self.services:
            if service.running:
                self.successResultOf(service.stopService())
        self.service = SensorsService(
            clock=self.clock,
            confinement=Confinement.of(roots or [self.root]),
            store=SensorStore(self.state, self.clock.seconds),
            **kw,
        )
        self.services.append(self.service)
        self.service.startService()
        api = Resource()
        api.putChild(b"sensors", SensorsResource(self.service, MutationGuard(token)))
        root = Resource()
        root.putChild(b"api", api)
        self.site = PistatsdSite(root, reactor=self.clock, max_body=4096)
        return self.service

    def call(
        self,
        method: str,
        path: str,
        document: Any = None,
        headers: dict[str, str] | None = None,
        peer: str = "127.0.0.1",
        raw: bytes | None = None,
    ) -> Response:
        body = raw
        all_headers = dict(headers or {})
        if document is not None:
            body = json.dumps(document).encode()
            all_headers.setdefault("Content-Type", "application/json")
        return request(self.site, method, path, all_headers, body, peer=peer)

    def create(self, name: str = "room", path: str | None = None, **fields: Any) -> Response:
        document = {"name": name, "path": path or self.temp, "scale": 0.001, "unit": "C"}
        document.update(fields)
        return self.call("POST", "/api/sensors", document)

    def json(self, response: Response) -> Any:
        self.assertEqual(response.header("content-type"), "application/json", response.body)
        return json.loads(response.body)

    def assertError(self, response: Response, status: int, fragment: str) -> None:
        self.assertEqual(response.status, status, response.body)
        message = self.json(response)["error"]
        self.assertIn(fragment, message)


class CrudTests(SensorsCase):
    def test_create(self) -> None:
        response = self.create()
        self.assertEqual(response.status, 201)
        self.assertEqual(response.header("location"), "/api/sensors/room")
        self.assertEqual(
            self.json(response),
            {
                "name": "room",
                "path": self.temp,
                "scale": 0.001,
                "offset": 0.0,
                "unit": "C",
                "value": 21.5,
                "error": None,
                "links": {"self": "/api/sensors/room"},
            },
        )

    def test_defaults(self) -> None:
        response = self.call("POST", "/api/sensors", {"name": "raw", "path": self.temp})
        document = self.json(response)
        self.assertEqual((document["scale"], document["offset"], document["unit"]), (1.0, 0.0, ""))
        self.assertEqual(document["value"], 21500.0)

    def test_offset(self) -> None:
        document = self.json(self.create(offset=-1.5))
        self.assertEqual(document["value"], 20.0)

    def test_list_and_get(self) -> None:
        self.create("b")
        self.create("a", scale=1)
        listing = self.json(self.call("GET", "/api/sensors"))
        self.assertEqual([s["name"] for s in listing["sensors"]], ["a", "b"])
        self.assertEqual(listing["sensors"][0]["value"], 21500.0)
        one = self.call("GET", "/api/sensors/b")
        self.assertEqual(one.status, 200)
        self.assertEqual(self.json(one)["value"], 21.5)
        self.assertEqual(self.json(one)["links"], {"self": "/api/sensors/b"})
        self.assertEqual(self.call("GET", "/api/sensors/").status, 200)
        self.assertEqual(self.call("GET", "/api/sensors/b/").status, 200)

    def test_empty_list(self) -> None:
        self.assertEqual(self.json(self.call("GET", "/api/sensors")), {"sensors": []})

    def test_head(self) -> None:
        self.create()
        response = self.call("HEAD", "/api/sensors/room")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.body, b"")

    def test_put_replaces(self) -> None:
        self.create()
        response = self.call(
            "PUT", "/api/sensors/room", {"path": self.temp, "scale": 0.01, "unit": "dC"}
        )
        self.assertEqual(response.status, 200)
        document = self.json(response)
        self.assertEqual((document["value"], document["unit"]), (215.0, "dC"))
        self.assertEqual(self.json(self.call("GET", "/api/sensors/room"))["unit"], "dC")

    def test_put_creates(self) -> None:
        response = self.call("PUT", "/api/sensors/new", {"name": "new", "path": self.temp})
        self.assertEqual(response.status, 201)
        self.assertEqual(response.header("location"), "/api/sensors/new")
        self.assertEqual(self.json(response)["value"], 21500.0)

    def test_get_put_round_trip(self) -> None:
        """A client may PUT back what it got: value, error and links are ignored."""
        self.create()
        document = self.json(self.call("GET", "/api/sensors/room"))
        document["unit"] = "K"
        document["offset"] = 273.15
        response = self.call("PUT", "/api/sensors/room", document)
        self.assertEqual(response.status, 200, response.body)
        self.assertAlmostEqual(self.json(response)["value"], 294.65)

    def test_delete(self) -> None:
        self.create()
        response = self.call("DELETE", "/api/sensors/room")
        self.assertEqual(response.status, 204)
        self.assertEqual(response.body, b"")
        self.assertError(self.call("GET", "/api/sensors/room"), 404, "no sensor named 'room'")
        self.assertError(self.call("DELETE", "/api/sensors/room"), 404, "no sensor")
        self.assertEqual(self.service.readings(), {})

    def test_unknown_sensor(self) -> None:
        self.assertError(self.call("GET", "/api/sensors/nope"), 404, "no sensor named 'nope'")
        self.assertError(self.call("GET", "/api/sensors/..."), 404, "no sensor")
        self.assertError(self.call("GET", "/api/sensors/a/b"), 404, "no such resource")

    def test_methods(self) -> None:
        response = self.call("PATCH", "/api/sensors")
        self.assertError(response, 405, "PATCH")
        self.assertEqual(response.header("allow"), "GET, HEAD, POST")
        response = self.call("POST", "/api/sensors/room", {"path": self.temp})
        self.assertError(response, 405, "POST")
        self.assertEqual(response.header("allow"), "GET, HEAD, PUT, DELETE")
        self.assertEqual(self.call("DELETE", "/api/sensors").status, 405)

    def test_duplicate(self) -> None:
        self.create()
        self.assertError(self.create(), 409, "already exists")

    def test_limit(self) -> None:
        self.start(max_sensors=2)
        logged = Logged(self)
        self.assertEqual(self.create("a").status, 201)
        self.assertEqual(self.create("b").status, 201)
        self.assertError(self.create("c"), 409, "at most 2")
        self.assertError(self.call("PUT", "/api/sensors/c", {"path": self.temp}), 409, "at most 2")
        # Replacing at the limit is fine: it does not add a sensor.
        self.assertEqual(self.call("PUT", "/api/sensors/a", {"path": self.temp}).status, 200)
        self.assertTrue(any("limit of 2 sensors" in t for t in logged.texts(LogLevel.warn)))
        self.assertEqual(sorted(self.service.readings()), ["a", "b"])

    def test_changes_are_serialised(self) -> None:
        """Two creations of one name racing through slow saves: the second sees the first."""
        from twisted.internet.defer import Deferred, maybeDeferred, succeed

        held: list[tuple[Deferred[None], Any, tuple[Any, ...]]] = []

        class SlowSaves:
            def __call__(self, f: Any, *args: Any) -> Deferred[Any]:
                if f.__name__ == "save":
                    d: Deferred[None] = Deferred()
                    held.append((d, f, args))
                    return d
                return maybeDeferred(f, *args)

            def start(self) -> None:
                pass

            def stop(self) -> Deferred[None]:
                return succeed(None)

        self.start(blocking=SlowSaves())
        first = self.service.create(FileSensor("room", self.temp))
        second = self.service.create(FileSensor("room", self.temp, unit="K"))
        self.assertEqual(len(held), 1)  # the second waits for the first to finish
        self.assertIsNone(self.service.sensor("room"))  # not visible before it is saved
        d, save, args = held.pop()
        save(*args)
        d.callback(None)
        self.assertEqual(self.successResultOf(first)["unit"], "")
        self.assertEqual(self.failureResultOf(second).value.code, 409)
        self.assertEqual(held, [])

    def test_changes_are_logged(self) -> None:
        logged = Logged(self)
        self.create()
        self.call("DELETE", "/api/sensors/room")
        texts = logged.texts(LogLevel.info)
        self.assertTrue(any("Sensor room created by 127.0.0.1" in t for t in texts), texts)
        self.assertTrue(any("Sensor room deleted by 127.0.0.1" in t for t in texts), texts)


class ValidationTests(SensorsCase):
    def post_raw(self, body: bytes, ctype: str | None = "application/json") -> Response:
        headers = {"Content-Type": ctype} if ctype else {}
        return self.call("POST", "/api/sensors", headers=headers, raw=body)

    def test_content_type(self) -> None:
        body = json.dumps({"name": "a", "path": self.temp}).encode()
        for ctype in (None, "text/plain", "application/x-www-form-urlencoded", "json"):
            self.assertError(self.post_raw(body, ctype), 415, "application/json")
        self.assertEqual(self.post_raw(body, "Application/JSON; charset=utf-8").status, 201)

    def test_body_shape(self) -> None:
        cases = [
            (b"", "empty"),
            (b"{not json", "malformed JSON"),
            (b'{"name": "a", "path": NaN}', "malformed JSON"),
            (b"[1, 2]", "must be a JSON object"),
            (b'"room"', "must be a JSON object"),
            (b"\xff\xfe", "not UTF-8"),
            (b'{"name": "a", "path": "/x", "scale": 1e999}', "scale must be a finite number"),
        ]
        for body, fragment in cases:
            self.assertError(self.post_raw(body), 400, fragment)

    def test_fields(self) -> None:
        path = self.temp
        cases: list[tuple[dict[str, Any], str]] = [
            ({"path": path}, "name is required"),
            ({"name": "a b", "path": path}, "invalid sensor name"),
            ({"name": "", "path": path}, "invalid sensor name"),
            ({"name": ".hidden", "path": path}, "invalid sensor name"),
            ({"name": "-x", "path": path}, "invalid sensor name"),
            ({"name": "x" * 65, "path": path}, "invalid sensor name"),
            ({"name": "caf\u00e9", "path": path}, "invalid sensor name"),
            ({"name": 5, "path": path}, "name must be a string"),
            ({"name": "a"}, "path is required"),
            ({"name": "a", "path": 5}, "path must be a string"),
            ({"name": "a", "path": ""}, "path must not be empty"),
            ({"name": "a", "path": path, "scale": "2"}, "scale must be a number"),
            ({"name": "a", "path": path, "scale": True}, "scale must be a number"),
            ({"name": "a", "path": path, "offset": [1]}, "offset must be a number"),
            ({"name": "a", "path": path, "offset": 10**400}, "offset must be a finite"),
            ({"name": "a", "path": path, "unit": 5}, "unit must be a string"),
            ({"name": "a", "path": path, "unit": "x" * 17}, "at most 16"),
            ({"name": "a", "path": path, "unit": "C\nroom 99"}, "control characters"),
            ({"name": "a", "path": path, "colour": "red"}, "unknown field 'colour'"),
        ]
        for document, fragment in cases:
            response = self.call("POST", "/api/sensors", document)
            self.assertEqual(response.status, 400, (document, response.body))
            self.assertIn(fragment, self.json(response)["error"], document)
        self.assertEqual(self.json(self.call("GET", "/api/sensors")), {"sensors": []})

    def test_name_limits_accepted(self) -> None:
        for name in ("x" * 64, "cpu.temp_1-a", "0", "_"):
            self.assertEqual(self.create(name).status, 201, name)

    def test_put_names(self) -> None:
        response = self.call("PUT", "/api/sensors/room", {"name": "other", "path": self.temp})
        self.assertError(response, 400, "does not match the URL")
        response = self.call("PUT", "/api/sensors/bad%20name", {"path": self.temp})
        self.assertError(response, 400, "invalid sensor name")
        response = self.call("PUT", "/api/sensors/.hidden", {"path": self.temp})
        self.assertError(response, 400, "invalid sensor name")

    def test_put_validates_like_post(self) -> None:
        self.create()
        response = self.call("PUT", "/api/sensors/room", {"path": self.temp, "scale": "x"})
        self.assertError(response, 400, "scale")
        response = self.call("PUT", "/api/sensors/room", {"scale": 2})
        self.assertError(response, 400, "path is required")
        self.assertEqual(self.json(self.call("GET", "/api/sensors/room"))["scale"], 0.001)

    def test_body_too_large(self) -> None:
        response = self.create(unit="C", pad="x" * 5000)
        self.assertEqual(response.status, 413)


class ConfinementTests(SensorsCase):
    def test_outside_the_roots(self) -> None:
        self.assertError(self.create(path="/etc/passwd"), 400, "outside the allowed sensor roots")
        self.assertError(self.create(path=self.outside + "/x"), 400, "outside")

    def test_dot_dot(self) -> None:
        for path in (self.root + "/../outside/x", self.root + "/..", "/sys/../etc/passwd"):
            self.assertError(self.create(path=path), 400, "'..'")

    def test_relative(self) -> None:
        for path in ("temp", "root/temp", "./temp", "~/temp"):
            self.assertError(self.create(path=path), 400, "must be absolute")

    def test_nul(self) -> None:
        self.assertError(self.create(path=self.temp + "\0x"), 400, "NUL")

    def test_unresolvable_path_is_a_400(self) -> None:
        """A link C{realpath} may not read (C{/proc/1/root}) is the client's error, not a 500."""
        from pistatsd.sensors import confine as confine_module

        real = os.path.realpath
        locked = os.path.join(self.root, "locked")

        def realpath(path: str, **kwargs: Any) -> str:
            if path.startswith(locked):
                raise PermissionError(13, "Permission denied", locked)
            return real(path, **kwargs)

        self.patch(confine_module.os.path, "realpath", realpath)
        response = self.create(path=locked + "/etc/hostname")
        self.assertError(response, 400, "cannot be resolved: Permission denied")
        self.assertIn(repr(locked + "/etc/hostname"), self.json(response)["error"])
        with self.assertRaises(ReadError) as caught:
            Confinement.of([self.root]).read_number(locked + "/x")
        self.assertEqual(str(caught.exception), "path cannot be resolved: Permission denied")

    def test_proc_1_root(self) -> None:
        """The real thing, with /proc allowed: refused one way or another, never a 500."""
        self.start(roots=[self.root, "/proc"])
        response = self.create(path="/proc/1/root/etc/hostname")
        self.assertEqual(response.status, 400, response.body)

    def test_control_characters(self) -> None:
        """They would forge log lines (the path is logged on every change) or reorder text."""
        controls = [
            "\n", "\r", "\t", "\x01", "\x1b", "\x7f", "\x85", "\x9b",
            "\u2028", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
            "\u2066", "\u2067", "\u2068", "\u2069",
        ]  # fmt: skip
        for char in controls:
            self.assertError(self.create(path=self.temp + char), 400, "control characters")
            self.assertError(self.create(unit="C" + char), 400, "control characters")
            self.assertError(self.create(name="room" + char), 400, "invalid sensor name")
            response = self.call("PUT", "/api/sensors/room" + quote(char), {"path": self.temp})
            self.assertError(response, 400, "invalid sensor name")
        self.assertEqual(self.json(self.call("GET", "/api/sensors")), {"sensors": []})
        self.assertEqual(self.create(unit="°C").status, 201)

    def test_symlink_out_of_the_root(self) -> None:
        secret = os.path.join(self.outside, "secret")
        self.write(secret, "42\n")
        os.symlink(secret, os.path.join(self.root, "link"))
        self.assertError(self.create(path=self.root + "/link"), 400, "outside")
        os.symlink(self.outside, os.path.join(self.root, "dirlink"))
        self.assertError(self.create(path=self.root + "/dirlink/secret"), 400, "outside")

    def test_symlink_inside_the_root(self) -> None:
        """sysfs is mostly symlinks: links that stay inside are fine."""
        os.symlink(self.temp, os.path.join(self.root, "link"))
        self.assertEqual(self.json(self.create(path=self.root + "/link"))["value"], 21.5)

    def test_root_behind_a_symlink(self) -> None:
        alias = os.path.join(self.base, "alias")
        os.symlink(self.root, alias)
        self.service = SensorsService(
            clock=self.clock,
            confinement=Confinement.of([alias]),
            store=SensorStore(self.state, self.clock.seconds),
        )
        self.services.append(self.service)
        self.service.startService()
        self.successResultOf(self.service.create(FileSensor("a", alias + "/temp")))
        self.assertEqual(self.service.readings(), {"a": 21500.0})

    def test_symlink_swapped_after_definition(self) -> None:
        link = os.path.join(self.root, "link")
        os.symlink(self.temp, link)
        self.assertEqual(self.create(path=link).status, 201)
        secret = os.path.join(self.outside, "secret")
        self.write(secret, "42\n")
        os.unlink(link)
        os.symlink(secret, link)
        self.clock.advance(self.service.interval)
        document = self.json(self.call("GET", "/api/sensors/room"))
        self.assertIsNone(document["value"])
        self.assertIn("outside the allowed sensor roots", document["error"])
        os.unlink(link)
        os.symlink(self.temp, link)
        self.clock.advance(self.service.interval)
        self.assertEqual(self.service.readings(), {"room": 21.5})

    def test_directory_swapped_after_definition(self) -> None:
        inner = os.path.join(self.root, "dev")
        os.makedirs(inner)
        self.write(os.path.join(inner, "t"), "1\n")
        self.write(os.path.join(self.outside, "t"), "666\n")
        self.assertEqual(self.create(path=inner + "/t", scale=1).status, 201)
        os.rename(inner, inner + ".old")
        os.symlink(self.outside, inner)
        self.clock.advance(self.service.interval)
        self.assertEqual(self.service.readings(), {"room": None})
        self.assertIn("outside", self.service.reading("room").error or "")

    def test_roots_narrowed_after_restart(self) -> None:
        """A saved sensor outside new roots is kept, and its reads say why they fail."""
        self.create()
        other = os.path.join(self.base, "other")
        os.makedirs(other)
        self.service.stopService()
        self.service = SensorsService(
            clock=self.clock,
            confinement=Confinement.of([other]),
            store=SensorStore(self.state, self.clock.seconds),
        )
        self.services.append(self.service)
        self.service.startService()
        self.assertIsNotNone(self.service.sensor("room"))
        self.assertIn("outside", self.service.reading("room").error or "")

    def test_swap_between_check_and_open(self) -> None:
        """The kernel's view of the opened file is checked too, so a race is lost by the attacker.

        C{realpath} is made to miss a directory swapped to a symlink just after
        it looked, which is what a race would look like.
        """
        from pistatsd.sensors import confine as confine_module

        inner = os.path.join(self.root, "dev")
        os.symlink(self.outside, inner)
        self.write(os.path.join(self.outside, "t"), "666\n")
        confinement = Confinement.of([self.root])
        self.patch(confine_module.os.path, "realpath", lambda p: p)
        with self.assertRaises(ReadError) as caught:
            confinement.read_number(inner + "/t")
        self.assertIn("outside", str(caught.exception))
        os.symlink(self.outside + "/t", os.path.join(self.root, "last"))
        with self.assertRaises(ReadError) as caught:
            confinement.read_number(self.root + "/last")  # a final symlink is never followed
        self.assertIn("changed while being opened", str(caught.exception))

    def test_read_number_directly(self) -> None:
        confinement = Confinement.of([self.root])
        self.assertEqual(confinement.read_number(self.temp), 21500.0)
        with self.assertRaises(ReadError):
            confinement.read_number("/etc/hostname")
        os.mkfifo(os.path.join(self.root, "fifo"))
        # A FIFO must not hang the reader (it is opened non-blocking, then refused).
        with self.assertRaises(ReadError) as caught:
            confinement.read_number(os.path.join(self.root, "fifo"))
        self.assertIn("not a regular file", str(caught.exception))


class ReadingTests(SensorsCase):
    def test_refreshed_periodically(self) -> None:
        self.create()
        self.write(self.temp, "22000\n")
        self.assertEqual(self.service.readings(), {"room": 21.5})  # cached until the tick
        self.clock.advance(self.service.interval)
        self.assertEqual(self.service.readings(), {"room": 22.0})
        self.assertEqual(self.json(self.call("GET", "/api/sensors/room"))["value"], 22.0)

    def test_failed_reads_are_values_not_500s(self) -> None:
        cases = [
            ("", "empty"),
            ("hot\n", "not a number"),
            ("nan\n", "not a finite number"),
            ("1" * 5000, "larger than 4096 bytes"),
            ("\xe9\xe9", "not ASCII"),
        ]
        self.create()
        for text, fragment in cases:
            self.write(self.temp, text)
            self.clock.advance(self.service.interval)
            response = self.call("GET", "/api/sensors/room")
            self.assertEqual(response.status, 200)
            document = self.json(response)
            self.assertIsNone(document["value"], text)
            self.assertIn(fragment, document["error"], text)

    def test_missing_file(self) -> None:
        response = self.create(path=self.root + "/not-plugged-in")
        self.assertEqual(response.status, 201)
        document = self.json(response)
        self.assertIsNone(document["value"])
        self.assertEqual(document["error"], "No such file or directory")
        self.assertEqual(self.create("dir", path=self.root).status, 201)
        self.assertEqual(self.service.reading("dir").error, "not a regular file")

    def test_errors_never_quote_the_file(self) -> None:
        """A sensor on /proc/self/environ must not print the daemon's secrets."""
        self.write(self.temp, "PISTATSD_API_TOKEN=hunter2\n")
        document = self.json(self.create())
        self.assertIsNone(document["value"])
        self.assertNotIn("hunter2", json.dumps(document))

    def test_out_of_range_after_scale(self) -> None:
        self.write(self.temp, "1e308\n")
        document = self.json(self.create(scale=10))
        self.assertIsNone(document["value"])
        self.assertIn("out of range", document["error"])

    def test_failures_logged_once_per_episode(self) -> None:
        self.create()
        logged = Logged(self)
        os.unlink(self.temp)
        for _ in range(3):
            self.clock.advance(self.service.interval)
        self.write(self.temp, "1000")
        self.clock.advance(self.service.interval)
        warnings = [t for t in logged.texts(LogLevel.warn) if "room" in t]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertTrue(any("room reads again" in t for t in logged.texts(LogLevel.info)))

    def test_snapshot_section_is_cached(self) -> None:
        self.create()
        section = self.service.snapshot_section()
        self.assertEqual(
            section, {"sensors": {"room": {"value": 21.5, "unit": "C", "error": None}}}
        )
        os.unlink(self.temp)  # no I/O happens outside the refresh
        self.assertIs(self.service.snapshot_section(), section)
        self.clock.advance(self.service.interval)
        after = self.service.snapshot_section()
        self.assertIsNot(after, section)
        self.assertEqual(section["sensors"]["room"]["value"], 21.5)  # old snapshot untouched
        self.assertIsNone(after["sensors"]["room"]["value"])
        self.assertEqual(after["sensors"]["room"]["error"], "No such file or directory")

    def test_readings(self) -> None:
        self.create("a")
        self.create("b", path=self.root + "/missing")
        self.assertEqual(self.service.readings(), {"a": 21.5, "b": None})

    def test_stuck_read_is_reported(self) -> None:
        """A read that never returns (a hung 1-Wire bus) becomes an error, not a stale value."""
        from twisted.internet.defer import Deferred

        hung: list[Deferred[Any]] = []

        class HangingRunner:
            def __call__(self, f: Any, *args: Any) -> Deferred[Any]:
                if f.__name__ == "read_number":
                    hung.append(Deferred())
                    return hung[-1]
                from twisted.internet.defer import maybeDeferred

                return maybeDeferred(f, *args)

            def start(self) -> None:
                pass

            def stop(self) -> Deferred[None]:
                from twisted.internet.defer import succeed

                return succeed(None)

        self.start(blocking=HangingRunner(), stuck_after=30, first_read_wait=2)
        created = self.service.create(FileSensor("room", self.temp, scale=0.001))
        self.assertNoResult(created)  # waiting a little for the first reading
        self.clock.advance(2)
        self.assertEqual(self.successResultOf(created)["error"], "no reading yet")
        self.clock.pump([self.service.interval] * 6)
        self.assertEqual(len(hung), 1)  # one read at a time per sensor
        self.assertIn("has not finished after 30 s", self.service.reading("room").error or "")
        hung[0].callback(21000.0)
        self.assertEqual(self.service.readings(), {"room": 21.0})


class AuthorizationTests(SensorsCase):
    def test_token_missing(self) -> None:
        self.start(token="s3cret")
        for method, path in (
            ("POST", "/api/sensors"),
            ("PUT", "/api/sensors/room"),
            ("DELETE", "/api/sensors/room"),
        ):
            response = self.call(method, path, {"name": "room", "path": self.temp})
            self.assertError(response, 401, "Bearer")
            self.assertEqual(response.header("www-authenticate"), 'Bearer realm="pistatsd"')
        response = self.call(
            "POST", "/api/sensors", {"path": "x"}, headers={"Authorization": "Basic czNjcmV0"}
        )
        self.assertEqual(response.status, 401)  # authorisation before validation

    def test_token_wrong(self) -> None:
        self.start(token="s3cret")
        for token in ("wrong", "s3cret2", "S3CRET", "s3cre"):
            response = self.call(
                "POST",
                "/api/sensors",
                {"name": "room", "path": self.temp},
                headers={"Authorization": "Bearer " + token},
            )
            self.assertError(response, 403, "invalid API token")
        self.assertEqual(self.service.readings(), {})

    def test_token_right(self) -> None:
        self.start(token="s3cret")
        auth = {"Authorization": "bearer s3cret"}
        document = {"name": "room", "path": self.temp}
        self.assertEqual(self.call("POST", "/api/sensors", document, auth, "192.0.2.1").status, 201)
        self.assertEqual(self.call("PUT", "/api/sensors/room", document, auth).status, 200)
        self.assertEqual(self.call("DELETE", "/api/sensors/room", None, auth).status, 204)

    def test_token_compared_in_constant_time(self) -> None:
        calls: list[tuple[bytes, bytes]] = []
        real = resource_module.hmac.compare_digest

        def spy(a: bytes, b: bytes) -> bool:
            calls.append((a, b))
            return real(a, b)

        self.patch(resource_module.hmac, "compare_digest", spy)
        self.start(token="s3cret")
        self.call("DELETE", "/api/sensors/x", headers={"Authorization": "Bearer nope"})
        self.assertEqual(calls, [(b"nope", b"s3cret")])

    def test_no_token_loopback_only(self) -> None:
        self.assertEqual(self.create().status, 201)
        document = {"name": "x", "path": self.temp}
        response = self.call("POST", "/api/sensors", document, peer="192.0.2.1")
        self.assertError(response, 403, "from this machine")
        response = self.call("DELETE", "/api/sensors/room", peer="192.0.2.1")
        self.assertEqual(response.status, 403)
        self.assertEqual(
            self.call("PUT", "/api/sensors/room", document, peer="10.0.0.1").status, 403
        )
        self.assertEqual(self.call("POST", "/api/sensors", document, peer="127.8.9.10").status, 201)

    def test_no_token_proxied_loopback_refused(self) -> None:
        for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded"):
            response = self.call(
                "POST",
                "/api/sensors",
                {"name": "x", "path": self.temp},
                headers={header: "198.51.100.7"},
            )
            self.assertError(response, 403, "proxy")

    def test_reads_are_open(self) -> None:
        self.create()
        self.start(token="s3cret")
        for path in ("/api/sensors", "/api/sensors/room"):
            self.assertEqual(self.call("GET", path, peer="192.0.2.1").status, 200)

    def test_loopback_addresses(self) -> None:
        self.assertTrue(is_local_peer(IPv4Address("TCP", "127.0.0.1", 1)))
        self.assertTrue(is_local_peer(IPv4Address("TCP", "127.255.0.3", 1)))
        self.assertTrue(is_local_peer(IPv6Address("TCP", "::1", 1)))
        self.assertTrue(is_local_peer(IPv6Address("TCP", "::ffff:127.0.0.1", 1)))
        self.assertTrue(is_local_peer(UNIXAddress(b"/run/pistatsd.sock")))
        self.assertTrue(is_local_peer(UNIXAddress(None)))
        self.assertFalse(is_local_peer(IPv4Address("TCP", "192.0.2.1", 1)))
        self.assertFalse(is_local_peer(IPv6Address("TCP", "2001:db8::1", 1)))
        self.assertFalse(is_local_peer(IPv6Address("TCP", "::ffff:192.0.2.1", 1)))
        self.assertFalse(is_local_peer(IPv4Address("TCP", "0.0.0.0", 1)))


class TextTests(SensorsCase):
    def test_text_list(self) -> None:
        self.create()
        self.create("missing", path=self.root + "/gone", unit="")
        response = self.call("GET", "/api/sensors", headers={"Accept": "text/plain"})
        self.assertEqual(response.status, 200)
        self.assertEqual(response.header("content-type"), "text/plain; charset=utf-8")
        self.assertEqual(response.header("vary"), "Accept")
        self.assertEqual(response.body, b"missing null # No such file or directory\nroom 21.5 C\n")

    def test_text_one(self) -> None:
        self.create()
        response = self.call("GET", "/api/sensors/room", headers={"Accept": "text/plain"})
        self.assertEqual(response.body, b"room 21.5 C\n")

    def test_json_by_default(self) -> None:
        self.create()
        for accept in (None, "*/*", "application/json", "text/html,*/*;q=0.8", "text/*;q=0.5,*/*"):
            headers = {"Accept": accept} if accept else {}
            response = self.call("GET", "/api/sensors", headers=headers)
            self.assertEqual(response.header("content-type"), "application/json", accept)

    def test_text_when_preferred(self) -> None:
        self.create()
        headers = {"Accept": "application/json;q=0.5, text/plain"}
        response = self.call("GET", "/api/sensors", headers=headers)
        self.assertEqual(response.body, b"room 21.5 C\n")

    def test_format(self) -> None:
        documents = [
            {"name": "a", "value": 1e20, "unit": "", "error": None},
            {"name": "b", "value": None, "unit": "V", "error": "multi\nline"},
        ]
        self.assertEqual(as_text(documents), "a 1e+20\nb null V # multi line\n")


class PersistenceTests(SensorsCase):
    def saved(self) -> Any:
        with open(os.path.join(self.state, FILENAME)) as f:
            return json.load(f)

    def test_survives_restart(self) -> None:
        self.create()
        self.create("other", scale=1, offset=2, unit="")
        self.call("PUT", "/api/sensors/room", {"path": self.temp, "scale": 0.01, "unit": "x"})
        self.assertEqual(self.saved()["version"], 1)
        self.start()
        listing = self.json(self.call("GET", "/api/sensors"))["sensors"]
        self.assertEqual(
            [(s["name"], s["scale"], s["offset"], s["unit"], s["value"]) for s in listing],
            [("other", 1.0, 2.0, "", 21502.0), ("room", 0.01, 0.0, "x", 215.0)],
        )

    def test_delete_survives_restart(self) -> None:
        self.create()
        self.create("other")
        self.call("DELETE", "/api/sensors/room")
        self.start()
        self.assertEqual(list(self.service.readings()), ["other"])
        self.assertEqual([s["name"] for s in self.saved()["sensors"]], ["other"])

    def test_no_state_dir_yet(self) -> None:
        self.assertFalse(os.path.exists(self.state))
        self.assertEqual(self.create().status, 201)
        self.assertTrue(os.path.isfile(os.path.join(self.state, FILENAME)))

    def test_no_temporary_files_left(self) -> None:
        for i in range(5):
            self.create(f"s{i}")
        self.call("DELETE", "/api/sensors/s0")
        self.assertEqual(os.listdir(self.state), [FILENAME])

    def test_writes_are_fsynced(self) -> None:
        synced: list[int] = []
        real = os.fsync

        def spy(fd: int) -> None:
            synced.append(fd)
            real(fd)

        self.patch(store_module.os, "fsync", spy)
        self.create()
        self.assertEqual(len(synced), 2)  # the file, then the directory

    def test_leftover_temporary_file_removed_at_start(self) -> None:
        self.create()
        leftover = os.path.join(self.state, ".sensors.json.abc123.tmp")
        self.write(leftover, '{"half')
        self.start()
        self.assertFalse(os.path.exists(leftover))
        self.assertEqual(list(self.service.readings()), ["room"])

    def test_save_failure_changes_nothing(self) -> None:
        blocker = os.path.join(self.base, "file")
        self.write(blocker, "")
        self.state = os.path.join(blocker, "state")  # under a regular file: cannot be created
        self.start()
        logged = Logged(self)
        self.assertError(self.create(), 500, "could not save the sensor definitions: Not a dir")
        self.assertEqual(self.call("GET", "/api/sensors/room").status, 404)
        self.assertTrue(any("Could not save" in t for t in logged.texts(LogLevel.error)))

    def test_corrupt_file_moved_aside(self) -> None:
        os.makedirs(self.state)
        path = os.path.join(self.state, FILENAME)
        self.write(path, '{"version": 1, "sensors": [')
        self.clock.advance(1732240000)
        logged = Logged(self)
        self.start()
        self.assertEqual(self.service.readings(), {})
        aside = path + ".corrupt-20241122T014640Z"
        with open(aside) as f:
            self.assertEqual(f.read(), '{"version": 1, "sensors": [')
        self.assertFalse(os.path.exists(path))
        errors = logged.texts(LogLevel.error)
        self.assertTrue(any("corrupt" in t and aside in t for t in errors), errors)
        # New definitions are saved afresh; the corrupt file stays for a person to read.
        self.assertEqual(self.create().status, 201)
        self.assertEqual(
            sorted(os.listdir(self.state)), sorted([FILENAME, os.path.basename(aside)])
        )
        self.start()
        self.assertEqual(list(self.service.readings()), ["room"])

    def test_invalid_structure_is_corruption(self) -> None:
        os.makedirs(self.state)
        path = os.path.join(self.state, FILENAME)
        documents = [
            [],
            {"version": 2, "sensors": []},
            {"version": 1},
            {"version": 1, "sensors": {"a": {}}},
        ]
        for n, document in enumerate(documents):
            self.write(path, json.dumps(document))
            self.clock.advance(1)
            self.start()
            self.assertEqual(self.service.readings(), {}, document)
            self.assertFalse(os.path.exists(path), document)
            self.assertEqual(len(os.listdir(self.state)), n + 1)

    def test_one_bad_entry_does_not_lose_the_others(self) -> None:
        os.makedirs(self.state)
        path = os.path.join(self.state, FILENAME)
        good = {"name": "room", "path": self.temp, "scale": 0.001, "offset": 0, "unit": "C"}
        other = dict(good, name="other", scale=1.0)
        bad = [
            {"name": "a b", "path": self.temp},
            {"name": "rel", "path": "relative"},
            {"name": "room", "path": self.temp + "2"},
            "a",
            {"name": "forged", "path": self.temp + "\nSensor room deleted by 1.2.3.4"},
            {"name": "bidi", "path": self.temp, "unit": "\u202eC"},
        ]
        entries = [good, bad[0], bad[1], other, *bad[2:]]
        self.write(path, json.dumps({"version": 1, "sensors": entries}))
        self.clock.advance(1732240000)
        logged = Logged(self)
        self.start()
        self.assertEqual(self.service.readings(), {"other": 21500.0, "room": 21.5})
        # The bad ones are kept, with the reasons, for a person to fix.
        aside = path + ".rejected-20241122T014640Z"
        with open(aside) as f:
            rejected = json.load(f)["rejected"]
        self.assertEqual([r["definition"] for r in rejected], bad)
        self.assertEqual([r["index"] for r in rejected], [1, 2, 4, 5, 6, 7])
        problems = [r["problem"] for r in rejected]
        self.assertIn("invalid sensor name", problems[0])
        self.assertIn("must be absolute", problems[1])
        self.assertIn("a second sensor named 'room'", problems[2])
        self.assertIn("not an object", problems[3])
        self.assertIn("control characters (U+000A)", problems[4])
        self.assertIn("control characters (U+202E)", problems[5])
        # The file now holds the good ones only, so the next start is clean.
        self.assertEqual([s["name"] for s in self.saved()["sensors"]], ["other", "room"])
        [line] = [t for t in logged.texts() if FILENAME in t]
        self.assertIn("set 6 invalid definition(s) aside in " + aside, line)
        self.assertIn("loaded the 2 valid one(s)", line)
        self.assertIn("and 1 more", line)
        self.assertNotIn("\n", line)
        self.assertEqual(logged.texts(LogLevel.error), [line])
        logged.events.clear()
        self.start()
        self.assertEqual(list(self.service.readings()), ["other", "room"])
        self.assertEqual(logged.texts(LogLevel.error), [])
        self.assertEqual(
            sorted(os.listdir(self.state)), sorted([FILENAME, os.path.basename(aside)])
        )

    def test_bad_entries_that_cannot_be_set_aside_stay_in_the_file(self) -> None:
        os.makedirs(self.state)
        path = os.path.join(self.state, FILENAME)
        good = {"name": "room", "path": self.temp, "scale": 0.001, "offset": 0, "unit": "C"}
        original = json.dumps({"version": 1, "sensors": [good, {"name": "a b"}]})
        self.write(path, original)

        def no_space(*args: Any, **kwargs: Any) -> Any:
            raise OSError(28, "No space left on device")

        self.patch(files_module.tempfile, "mkstemp", no_space)
        logged = Logged(self)
        self.start()
        self.assertEqual(self.service.readings(), {"room": 21.5})
        [line] = logged.texts(LogLevel.error)
        self.assertIn("could not be set aside (No space left on device)", line)
        with open(path) as f:
            self.assertEqual(f.read(), original)
        self.assertError(self.create("new"), 500, "not overwriting")
        self.assertEqual(os.listdir(self.state), [FILENAME])

    def test_same_second_corruptions_kept_apart(self) -> None:
        os.makedirs(self.state)
        path = os.path.join(self.state, FILENAME)
        for _ in range(2):
            self.write(path, "junk")
            self.start()
        self.assertEqual(len([n for n in os.listdir(self.state) if ".corrupt-" in n]), 2)

    def test_unreadable_file_is_not_overwritten(self) -> None:
        os.makedirs(os.path.join(self.state, FILENAME))  # a directory: cannot be read
        self.start()
        self.assertError(self.create(), 500, "not overwriting")
        self.assertTrue(os.path.isdir(os.path.join(self.state, FILENAME)))
