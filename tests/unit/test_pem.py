"""The one PEM bundle loader, shared by the TLS ports, the client and InfluxDB."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from pistatsd.pem import load_certificates, trust_root
from tests.influxd import make_pki


class LoadCertificatesTests(SynchronousTestCase):
    def setUp(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        pki = make_pki(directory)
        with open(pki.ca, "rb") as f:
            self.ca = f.read()
        with open(pki.cert, "rb") as f:
            self.server = f.read()
        with open(pki.key, "rb") as f:
            self.key = f.read()

    def test_bundle_with_a_key_in_it(self) -> None:
        certificates = load_certificates(self.key + self.server + b"\n" + self.ca)
        self.assertEqual(len(certificates), 2)
        self.assertIsNotNone(trust_root(certificates))

    def test_no_certificate(self) -> None:
        for data in (b"", b"hello", self.key):
            e = self.assertRaises(ValueError, load_certificates, data)
            self.assertEqual(str(e), "no PEM certificate in it")

    def test_broken_certificate(self) -> None:
        broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        e = self.assertRaises(ValueError, load_certificates, broken)
        self.assertIn("unreadable certificate", str(e))
