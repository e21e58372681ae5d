"""What the daemon leaves unloaded, and how: pyOpenSSL without TLS, WAMP, cffi's parser.

The import system of the test process is never changed: L{leave_out} gets
its own module table and finder list here, and a fresh interpreter and the
daemon are checked in C{tests/integration/test_footprint_daemon.py}.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from pistatsd.config import Config
from pistatsd.footprint import LeaveOut, TLSLeftOut, leave_out, tls_uses
from pistatsd.ws import nvx


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

    def test_autobahn_nvx_wrappers_are_pistatsd_s(self) -> None:
        for name in ("autobahn.nvx._utf8validator", "autobahn.nvx._xormasker"):
            spec = LeaveOut().find_spec(name, None)
            assert spec is not None and spec.loader is not None
            self.assertEqual(spec.name, name)
            self.assertIs(spec.loader.create_module(spec), nvx)
