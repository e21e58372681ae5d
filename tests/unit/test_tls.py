"""TLS in memory: endpoint strings, certificate generation and loading."""

from __future__ import annotations

import datetime
import ipaddress
import os
import stat

import service_identity
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from twisted.internet.endpoints import TCP4ServerEndpoint, quoteStringArgument, serverFromString
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactor
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.certificates import (
    SELF_SIGNED_DAYS,
    ensure_self_signed,
    fingerprint,
    generate_self_signed,
    load_key_material,
    self_signed_paths,
)
from pistatsd.config import Config, ConfigError
from pistatsd.tls import SSLDescription, check_tls, parse_ssl, tls_endpoint
from tests.certificates import UTC, cert_pem, key_pem, make_ca, make_leaf, write

# -- unit tests --------------------------------------------------------------


class EndpointStringTests(SynchronousTestCase):
    """C{ssl:} strings are read with Twisted's grammar, keeping port, interface, backlog."""

    def test_parse_ssl(self):
        parsed = parse_ssl(r"ssl:port=8443:interface=\:\:1:backlog=7")
        self.assertEqual((parsed.port, parsed.interface, parsed.backlog), (8443, "::1", 7))
        self.assertIsNone(parsed.private_key)

    def test_positional_private_key(self):
        parsed = parse_ssl("ssl:8443:server.pem")
        self.assertEqual((parsed.port, parsed.private_key), (8443, "server.pem"))

    def test_forms_users_write(self):
        for description, expected in [
            ("ssl:8443", SSLDescription(8443)),
            (r"ssl:port=8443:interface=\:\:1", SSLDescription(8443, interface="::1")),
            (
                "ssl:8443:privateKey=k.pem:certKey=c.pem",
                SSLDescription(8443, private_key="k.pem", cert_key="c.pem"),
            ),
            (
                "ssl:8443:extraCertChain=chain.pem",
                SSLDescription(8443, extra_cert_chain="chain.pem"),
            ),
            (
                r"ssl:8443:privateKey=C\:/keys/k\\1.pem",
                SSLDescription(8443, private_key="C:/keys/k\\1.pem"),
            ),
            ("ssl:8443:dhParameters=dh.pem", SSLDescription(8443, dh_parameters="dh.pem")),
        ]:
            self.assertEqual(parse_ssl(description), expected, description)

    def test_same_reading_as_twisted(self):
        """Twisted's own C{ssl:} parser finds the same port, interface, backlog and
        key file (here a name with a colon and a backslash, quoted the Twisted way)."""
        directory = self.mktemp()
        os.makedirs(directory)
        key, cert = make_leaf(*make_ca())
        combined = write(os.path.join(directory, "odd:na\\me.pem"), cert_pem(cert) + key_pem(key))
        description = (
            f"ssl:8443:privateKey={quoteStringArgument(combined)}:interface=\\:\\:1:backlog=7"
        )
        reactor = MemoryReactor()
        serverFromString(reactor, description).listen(Factory())
        [(port, _, options, backlog, interface)] = reactor.sslServers
        self.assertEqual(options.certificate.to_cryptography(), cert)
        parsed = parse_ssl(description)
        self.assertEqual(
            (parsed.port, parsed.backlog, parsed.interface, parsed.private_key),
            (port, backlog, interface, combined),
        )

    def test_errors(self):
        for description, reason in [
            ("ssl:notaport", "invalid port"),
            ("ssl:70000", "out of range"),
            ("ssl:8443:bogus=1", "unknown parameter 'bogus'"),
            ("ssl:8443:sslmethod=TLSv1_METHOD", "sslmethod is not supported"),
            ("ssl:8443:backlog=x", "invalid backlog"),
            ("ssl:interface=127.0.0.1", "no port"),
            ("ssl:8443\\", "trailing backslash"),
        ]:
            with self.assertRaises(ConfigError) as raised:
                parse_ssl(description)
            self.assertIn(reason, str(raised.exception), description)


class SelfSignedTests(SynchronousTestCase):
    """The generated certificate: names, key, files, reuse and regeneration."""

    def setUp(self):
        self.state = self.mktemp()

    def test_names_and_key(self):
        key, cert = generate_self_signed("mypi")
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(san.get_values_for_type(x509.DNSName), ["mypi", "mypi.local", "localhost"])
        self.assertEqual(
            san.get_values_for_type(x509.IPAddress),
            [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")],
        )
        self.assertIsInstance(key.curve, ec.SECP256R1)
        self.assertEqual(cert.issuer, cert.subject)
        cert.verify_directly_issued_by(cert)
        self.assertFalse(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        self.assertGreaterEqual(lifetime, datetime.timedelta(days=SELF_SIGNED_DAYS))

    def test_service_identity_accepts_the_names(self):
        _, cert = generate_self_signed("mypi")
        from service_identity.cryptography import (
            verify_certificate_hostname,
            verify_certificate_ip_address,
        )

        for name in ("mypi", "mypi.local", "localhost"):
            verify_certificate_hostname(cert, name)
        verify_certificate_ip_address(cert, "127.0.0.1")
        with self.assertRaises(service_identity.VerificationError):
            verify_certificate_hostname(cert, "otherhost")

    def test_files_modes_and_reuse(self):
        first = ensure_self_signed(self.state, hostname="mypi")
        key_path, cert_path = self_signed_paths(self.state)
        self.assertEqual((first.key_path, first.cert_path), (key_path, cert_path))
        self.assertTrue(first.generated)
        self.assertEqual(stat.S_IMODE(os.stat(key_path).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(key_path)).st_mode), 0o700)
        leftovers = [n for n in os.listdir(os.path.dirname(key_path)) if n.endswith(".tmp")]
        self.assertEqual(leftovers, [])
        second = ensure_self_signed(self.state, hostname="otherhost")
        self.assertEqual(second.fingerprint, first.fingerprint)
        with open(cert_path, "rb") as f:
            on_disk = x509.load_pem_x509_certificate(f.read())
        self.assertEqual(fingerprint(on_disk), first.fingerprint)

    def test_widened_directory_is_tightened(self):
        ensure_self_signed(self.state, hostname="mypi")
        directory = os.path.dirname(self_signed_paths(self.state)[0])
        os.chmod(directory, 0o755)
        ensure_self_signed(self.state, hostname="mypi")
        self.assertEqual(stat.S_IMODE(os.stat(directory).st_mode), 0o700)

    def test_regenerated_when_a_file_is_missing(self):
        key_path, cert_path = self_signed_paths(self.state)
        for missing in (cert_path, key_path):
            before = ensure_self_signed(self.state, hostname="mypi")
            os.unlink(missing)
            after = ensure_self_signed(self.state, hostname="mypi")
            self.assertNotEqual(after.fingerprint, before.fingerprint)
            self.assertEqual(ensure_self_signed(self.state).fingerprint, after.fingerprint)

    def test_regenerated_when_expired(self):
        before = ensure_self_signed(self.state, hostname="mypi")
        later = datetime.datetime.now(UTC) + datetime.timedelta(days=SELF_SIGNED_DAYS + 1)
        after = ensure_self_signed(self.state, hostname="mypi", now=later)
        self.assertNotEqual(after.fingerprint, before.fingerprint)
        self.assertGreater(after.certificate.not_valid_after_utc, later)

    def test_corrupt_pair_is_reported_not_overwritten(self):
        ensure_self_signed(self.state, hostname="mypi")
        key_path, _ = self_signed_paths(self.state)
        write(key_path, b"garbage")
        with self.assertRaises(ConfigError) as raised:
            ensure_self_signed(self.state)
        self.assertIn("remove", str(raised.exception))
        with open(key_path, "rb") as f:
            self.assertEqual(f.read(), b"garbage")

    def test_unwritable_state_dir(self):
        blocker = write(self.mktemp(), b"a file, not a directory")
        with self.assertRaises(ConfigError) as raised:
            ensure_self_signed(blocker)
        self.assertIn("cannot create", str(raised.exception))


class KeyMaterialTests(SynchronousTestCase):
    """--cert/--key and privateKey=/certKey= files: loading and every way they can be wrong."""

    def setUp(self):
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.ca_key, self.ca_cert = make_ca()
        self.key, self.cert = make_leaf(self.ca_key, self.ca_cert)
        self.key_path = write(os.path.join(self.dir, "key.pem"), key_pem(self.key))
        self.cert_path = write(os.path.join(self.dir, "cert.pem"), cert_pem(self.cert))

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def test_loads_pair(self):
        material = load_key_material(self.key_path, self.cert_path)
        self.assertEqual(material.fingerprint, fingerprint(self.cert))
        self.assertEqual(material.chain, ())
        self.assertFalse(material.generated)

    def test_full_chain_and_combined_file(self):
        write(self.path("full.pem"), cert_pem(self.cert) + cert_pem(self.ca_cert))
        material = load_key_material(self.key_path, self.path("full.pem"))
        self.assertEqual(material.chain, (self.ca_cert,))
        combined = write(self.path("both.pem"), cert_pem(self.cert) + key_pem(self.key))
        self.assertEqual(load_key_material(combined, combined).fingerprint, fingerprint(self.cert))

    def test_mismatch_names_both_files(self):
        other = write(self.path("other.pem"), key_pem(ec.generate_private_key(ec.SECP256R1())))
        config = Config(tls=("ssl:8443",), cert=self.cert_path, key=other)
        with self.assertRaises(ConfigError) as raised:
            check_tls(config)
        self.assertEqual(
            str(raised.exception),
            f"--tls ssl:8443: key {other} does not match certificate {self.cert_path}",
        )

    def test_missing_and_unreadable_files(self):
        missing = self.path("missing.pem")
        for config, expected in [
            (
                Config(tls=("ssl:8443",), cert=self.cert_path, key=missing),
                f"--tls ssl:8443: cannot read key {missing}: No such file or directory",
            ),
            (
                Config(tls=("ssl:8443",), cert=self.dir, key=self.key_path),
                f"--tls ssl:8443: cannot read certificate {self.dir}: Is a directory",
            ),
            (
                Config(tls=(f"ssl:8443:privateKey={missing}",)),
                f"--tls ssl:8443:privateKey={missing}: cannot read key {missing}",
            ),
            (
                Config(cert=missing),
                f"--cert/--key: cannot read key {missing}",
            ),
        ]:
            with self.assertRaises(ConfigError) as raised:
                check_tls(config)
            self.assertTrue(str(raised.exception).startswith(expected), str(raised.exception))

    def test_not_pem_and_encrypted(self):
        junk = write(self.path("junk.pem"), b"not pem at all\n")
        with self.assertRaises(ConfigError) as raised:
            load_key_material(self.key_path, junk)
        self.assertIn("holds no PEM certificate", str(raised.exception))
        with self.assertRaises(ConfigError) as raised:
            load_key_material(junk, self.cert_path)
        self.assertIn("holds no usable PEM private key", str(raised.exception))
        locked = write(self.path("locked.pem"), key_pem(self.key, b"secret"))
        with self.assertRaises(ConfigError) as raised:
            load_key_material(locked, self.cert_path)
        self.assertIn("passphrase", str(raised.exception))

    def test_bad_non_ssl_endpoint(self):
        with self.assertRaises(ConfigError) as raised:
            check_tls(Config(tls=("tcp:notaport",)))
        self.assertTrue(str(raised.exception).startswith("--tls tcp:notaport: "))

    def test_port_number_out_of_range(self):
        for description in ("tcp:70000", "ssl:70000"):
            with self.assertRaises(ConfigError) as raised:
                check_tls(Config(tls=(description,)))
            self.assertEqual(
                str(raised.exception), f"--tls {description}: port 70000 is out of range"
            )


class EndpointTests(SynchronousTestCase):
    """tls_endpoint listens where the string says, with the chosen certificate."""

    def setUp(self):
        self.state = self.mktemp()

    def test_ssl_listens_with_description_parameters(self):
        reactor = MemoryReactor()
        config = Config(state_dir=self.state)
        with capturedLogs() as events:
            endpoint = tls_endpoint(reactor, "ssl:8443:interface=127.0.0.1:backlog=7", config)
        endpoint.listen(Factory())
        [(port, _, options, backlog, interface)] = reactor.sslServers
        self.assertEqual((port, backlog, interface), (8443, 7, "127.0.0.1"))
        material = ensure_self_signed(self.state)
        self.assertEqual(options.certificate, material.certificate)
        [logged] = [e for e in events if "fingerprint" in e]
        self.assertEqual(logged["fingerprint"], material.fingerprint)
        self.assertTrue(logged["generated"])

    def test_description_files_win_over_options(self):
        directory = self.mktemp()
        os.makedirs(directory)
        key, cert = make_leaf(*make_ca())
        combined = write(os.path.join(directory, "both.pem"), cert_pem(cert) + key_pem(key))
        config = Config(state_dir=self.state, cert="/nonexistent", key="/nonexistent")
        reactor = MemoryReactor()
        tls_endpoint(reactor, f"ssl:0:privateKey={combined}", config).listen(Factory())
        self.assertEqual(reactor.sslServers[0][2].certificate, cert)
        self.assertFalse(os.path.exists(self.state), "no certificate generated")

    def test_other_types_pass_through(self):
        with capturedLogs() as events:
            endpoint = tls_endpoint(MemoryReactor(), "tcp:8443", Config(state_dir=self.state))
        self.assertIsInstance(endpoint, TCP4ServerEndpoint)
        self.assertTrue(any("plain text" in (e.get("log_format") or "") for e in events))

    def test_errors_name_the_option(self):
        config = Config(state_dir=self.state, key="/nonexistent/key.pem")
        with self.assertRaises(ConfigError) as raised:
            tls_endpoint(MemoryReactor(), "ssl:8443", config)
        self.assertEqual(
            str(raised.exception),
            "--tls ssl:8443: cannot read key /nonexistent/key.pem: No such file or directory",
        )
