"""What the daemon leaves unloaded, and how: pyOpenSSL without TLS, WAMP, cffi's parser.

The import system of the test process is never changed: L{leave_out} gets
its own module table and finder list here, and a fresh interpreter and the
daemon are checked in C{tests/integration/test_footprint_daemon.py}.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from pistatsd.config import Config
from pistatsd.footprint import leave_out, tls_uses
from pistatsd.leftout import (
    LeaveOut,
    LeftOutWhileStarting,
    TLSLeftOut,
    leave_out_while_starting,
    startup_over,
)
from pistatsd.ws import nvx


def loaded(*names: str) -> dict[str, ModuleType]:
    """A module table holding stand-ins for C{names}."""
    return {name: ModuleType(name) for name in names}


def config(**values: Any) -> Config:
    return Config(www=".", state_dir=".", **values)


class TLSUsesTests(SynchronousTestCase):
    def test_defaults_use_no_tls(self) -> None:
        self.assertEqual(tls_uses(config()), [])

    def test_plain_urls_use_no_tls(self) -> None:
        plain = config(influx="http://db:8086", mqtt="mqtt://broker")
        self.assertEqual(tls_uses(plain), [])

    def test_each_tls_use_is_named(self) -> None:
        self.assertEqual(tls_uses(config(tls=("ssl:8443",))), ["--tls"])
        self.assertEqual(tls_uses(config(cert="c.pem", key="k.pem")), ["--tls"])
        self.assertEqual(tls_uses(config(influx="HTTPS://db")), ["--influx https://"])
        self.assertEqual(tls_uses(config(mqtt="mqtts://broker")), ["--mqtt mqtts://"])

    def test_notifiers_and_smtp_may_speak_tls(self) -> None:
        extra = {"notify": {"phone": {"kind": "ntfy"}}, "smtp": {"host": "mail"}}
        self.assertEqual(tls_uses(config(extra=extra)), ["[notify]", "[smtp]"])


class LeaveOutInstallTests(SynchronousTestCase):
    def test_a_configuration_without_tls_installs_one_refusing_finder(self) -> None:
        finders: list[Any] = []
        first = leave_out(config(), modules={}, meta_path=finders)
        self.assertIs(leave_out(config(), modules={}, meta_path=finders), first)
        self.assertEqual(finders, [first])
        assert first is not None
        self.assertTrue(first.refuse_tls)

    def test_a_configuration_with_tls_still_leaves_wamp_out(self) -> None:
        finders: list[Any] = []
        finder = leave_out(config(tls=("ssl:8443",)), modules={}, meta_path=finders)
        assert finder is not None
        self.assertFalse(finder.refuse_tls)
        self.assertIsNone(finder.find_spec("OpenSSL", None))
        self.assertIsNotNone(finder.find_spec("autobahn.nvx._xormasker", None))

    def test_too_late_once_twisted_tcp_pyopenssl_or_autobahn_is_loaded(self) -> None:
        for loaded in ("twisted.internet.tcp", "OpenSSL", "autobahn"):
            finders: list[Any] = []
            self.assertIsNone(leave_out(config(), modules={loaded: object()}, meta_path=finders))
            self.assertEqual(finders, [], loaded)


class LeaveOutTests(SynchronousTestCase):
    def test_pyopenssl_is_refused_with_a_reason(self) -> None:
        for name in ("OpenSSL", "OpenSSL.SSL"):
            with self.assertRaises(TLSLeftOut) as caught:
                LeaveOut().find_spec(name, None)
            self.assertIsInstance(caught.exception, ImportError)
            self.assertEqual(caught.exception.name, name)
            self.assertIn("configured without TLS", str(caught.exception))

    def test_other_modules_are_left_to_the_other_finders(self) -> None:
        self.assertIsNone(LeaveOut().find_spec("json", None))
        self.assertIsNone(LeaveOut().find_spec("OpenSSLish", None))
        self.assertIsNone(LeaveOut().find_spec("cryptography", None))

    def test_wamp_authentication_is_loaded_lazily(self) -> None:
        wamp = importlib.util.find_spec("autobahn.wamp")
        assert wamp is not None and wamp.submodule_search_locations is not None
        spec = LeaveOut().find_spec("autobahn.wamp.auth", list(wamp.submodule_search_locations))
        assert spec is not None
        self.assertIsInstance(spec.loader, importlib.util.LazyLoader)

    def test_cbor2_is_loaded_lazily(self) -> None:
        # Autobahn's WAMP messages import it to learn whether it is installed.
        spec = LeaveOut().find_spec("cbor2", None)
        assert spec is not None
        self.assertIsInstance(spec.loader, importlib.util.LazyLoader)

    def test_treq_s_uploads_and_mimetypes_are_loaded_lazily(self) -> None:
        treq = importlib.util.find_spec("treq")
        assert treq is not None and treq.submodule_search_locations is not None
        for name, path in (
            ("treq.multipart", list(treq.submodule_search_locations)),
            ("mimetypes", None),
        ):
            spec = LeaveOut().find_spec(name, path)
            assert spec is not None
            self.assertIsInstance(spec.loader, importlib.util.LazyLoader, name)

    def test_autobahn_nvx_wrappers_are_pistatsd_s(self) -> None:
        for name in ("autobahn.nvx._utf8validator", "autobahn.nvx._xormasker"):
            spec = LeaveOut().find_spec(name, None)
            assert spec is not None and spec.loader is not None
            self.assertEqual(spec.name, name)
            self.assertIs(spec.loader.create_module(spec), nvx)


class WhileStartingTests(SynchronousTestCase):
    """The pistatsd command's finder, installed before Twisted: the standard
    library's OpenSSL bindings wait until the daemon is ready."""

    def test_the_standard_library_s_openssl_is_refused_while_starting(self) -> None:
        finder = LeaveOut(refuse_tls=False, starting=True)
        for name in ("ssl", "_ssl", "_hashlib"):
            with self.assertRaises(LeftOutWhileStarting) as caught:
                finder.find_spec(name, None)
            self.assertIsInstance(caught.exception, ImportError)
            self.assertEqual(caught.exception.name, name)
            self.assertIn("while pistatsd starts", str(caught.exception))
        self.assertIsNone(finder.find_spec("sslish", None))
        self.assertIsNone(finder.find_spec("hashlib", None))
        self.assertIsNone(finder.find_spec("OpenSSL", None), "TLS waits for the configuration")

    def test_not_refused_by_a_finder_that_is_not_starting(self) -> None:
        for name in ("ssl", "_ssl", "_hashlib"):
            self.assertIsNone(LeaveOut().find_spec(name, None), name)

    def test_one_finder_from_launch_to_configuration_to_ready(self) -> None:
        finders: list[Any] = []
        launched = leave_out_while_starting(finders)
        self.assertEqual(finders, [launched])
        self.assertTrue(launched.starting)
        self.assertFalse(launched.refuse_tls)
        self.assertIs(leave_out(config(), modules={}, meta_path=finders), launched)
        self.assertEqual(finders, [launched], "the configuration sets the same finder")
        self.assertTrue(launched.refuse_tls)
        self.assertTrue(launched.starting)
        startup_over(finders)
        self.assertFalse(launched.starting)
        self.assertIsNone(launched.find_spec("ssl", None))
        self.assertTrue(launched.refuse_tls, "pyOpenSSL stays out")

    def test_a_tls_configuration_lets_pyopenssl_in_but_not_the_standard_library_s(self) -> None:
        finders: list[Any] = []
        launched = leave_out_while_starting(finders)
        leave_out(config(tls=("ssl:8443",)), modules={}, meta_path=finders)
        self.assertIsNone(launched.find_spec("OpenSSL", None))
        with self.assertRaises(LeftOutWhileStarting):
            launched.find_spec("ssl", None)

    def test_startup_over_without_the_command_s_finder_changes_nothing(self) -> None:
        finders: list[Any] = []
        modules = loaded("http.client", "urllib.request")
        startup_over(finders, modules)
        self.assertEqual(finders, [])
        self.assertEqual(sorted(modules), ["http.client", "urllib.request"])

    def test_modules_that_took_their_no_tls_path_are_forgotten_once_ready(self) -> None:
        finders: list[Any] = []
        leave_out_while_starting(finders)
        modules = loaded("http.client", "urllib.request", "json")
        startup_over(finders, modules)
        self.assertEqual(sorted(modules), ["json"])
        modules.update(loaded("http.client"))
        startup_over(finders, modules)
        self.assertIn("http.client", modules, "only once, at the end of start-up")

    def test_modules_that_found_ssl_are_kept(self) -> None:
        # Someone (a .tac, a test) loaded ssl before the finder: nothing to run again.
        finders: list[Any] = []
        leave_out_while_starting(finders)
        modules = loaded("ssl", "http.client", "urllib.request")
        startup_over(finders, modules)
        self.assertEqual(sorted(modules), ["http.client", "ssl", "urllib.request"])
