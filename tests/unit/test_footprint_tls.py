"""Which configurations keep pyOpenSSL out of the daemon, and how it is kept out.

The import system of the test process is never changed: L{keep_tls_out}
gets its own module table and finder list here.  The daemon itself is
checked in C{tests/integration/test_footprint_daemon.py}.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from pistatsd.config import Config
from pistatsd.footprint import LeaveOut, TLSLeftOut, keep_tls_out, tls_uses


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


class KeepTLSOutTests(SynchronousTestCase):
    def test_a_configuration_without_tls_installs_one_finder(self) -> None:
        finders: list[Any] = []
        self.assertTrue(keep_tls_out(config(), modules={}, meta_path=finders))
        self.assertTrue(keep_tls_out(config(), modules={}, meta_path=finders))
        self.assertEqual([type(f) for f in finders], [LeaveOut])

    def test_a_configuration_with_tls_changes_nothing(self) -> None:
        finders: list[Any] = []
        self.assertFalse(keep_tls_out(config(tls=("ssl:8443",)), modules={}, meta_path=finders))
        self.assertEqual(finders, [])

    def test_too_late_once_twisted_tcp_or_pyopenssl_is_loaded(self) -> None:
        for loaded in ("twisted.internet.tcp", "OpenSSL"):
            finders: list[Any] = []
            self.assertFalse(keep_tls_out(config(), modules={loaded: object()}, meta_path=finders))
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
