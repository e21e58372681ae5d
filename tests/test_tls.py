"""TLS: certificate generation and loading in memory, then real handshakes against the plugin."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import os
import re
import socket
import ssl
import stat
from collections.abc import Callable

import pytest
import service_identity
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.endpoints import TCP4ServerEndpoint, quoteStringArgument, serverFromString
from twisted.internet.protocol import Factory
from twisted.internet.ssl import CertificateOptions
from twisted.internet.testing import MemoryReactor
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.certificates import (
    SELF_SIGNED_DAYS,
    KeyMaterial,
    ensure_self_signed,
    fingerprint,
    generate_self_signed,
    load_key_material,
    self_signed_paths,
)
from pistatsd.config import Config, ConfigError
from pistatsd.tls import SSLDescription, check_tls, parse_ssl, server_options, tls_endpoint
from tests.daemon import LOOPBACK, Daemon, run_twistd

UTC = datetime.UTC


# -- test PKI ----------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A throw-away certificate authority."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("pistatsd test CA"))
        .issuer_name(_name("pistatsd test CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_leaf(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, dns: str = "localhost"
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A server certificate for C{dns} and 127.0.0.1, signed by the CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(dns))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(dns), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def key_pem(key, password: bytes | None = None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write(path: str, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return path


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


#: RFC 7919's ffdhe2048 group: well-known Diffie-Hellman parameters.
FFDHE2048 = b"""-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""

#: OpenSSL 3's SSL_OP_ALLOW_CLIENT_RENEGOTIATION (pyOpenSSL has no name for it).
OP_ALLOW_CLIENT_RENEGOTIATION = 0x100


class MemoryHandshake:
    """A TLS handshake between two memory-BIO connections: no sockets."""

    def __init__(self, server_context: SSL.Context, client_context: SSL.Context) -> None:
        self.server = SSL.Connection(server_context, None)
        self.server.set_accept_state()
        self.client = SSL.Connection(client_context, None)
        self.client.set_connect_state()
        self.run(lambda: (_advance(self.client), _advance(self.server)))
        if self.client.get_finished() is None:
            raise AssertionError("the handshake did not finish")

    def run(self, step: Callable[[], object]) -> None:
        """Run C{step}, moving bytes both ways after it, until nothing moves
        (SSL.Error when a side gives up)."""
        for _ in range(20):
            step()
            if not self._pump():
                return

    def _pump(self) -> bool:
        moved = False
        for source, sink in ((self.client, self.server), (self.server, self.client)):
            try:
                data = source.bio_read(65536)
            except SSL.WantReadError:
                continue
            sink.bio_write(data)
            moved = True
        return moved

    def renegotiated(self) -> bool:
        """Whether a renegotiation the client asks for completes (SSL.Error if refused)."""
        assert self.client.renegotiate()
        self.run(
            lambda: (
                _advance(self.client),
                _advance(self.server, handshake=False),
                _advance(self.client, handshake=False),
            )
        )
        return self.client.total_renegotiations() == 1 and not self.client.renegotiate_pending()


def _advance(connection: SSL.Connection, handshake: bool = True) -> None:
    try:
        if handshake:
            connection.do_handshake()
        else:
            connection.recv(1024)
    except SSL.WantReadError:
        pass


def client_tls12(ciphers: bytes | None = None) -> SSL.Context:
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_max_proto_version(SSL.TLS1_2_VERSION)
    if ciphers is not None:
        context.set_cipher_list(ciphers)
    return context


class ServerOptionsTests(SynchronousTestCase):
    """The TLS options of an ssl: port, tried by handshakes in memory."""

    def setUp(self):
        self.ca_key, self.ca_cert = make_ca()
        key, cert = make_leaf(self.ca_key, self.ca_cert)
        self.material = KeyMaterial(key, cert, (self.ca_cert,), "key.pem", "cert.pem")

    def plain_context(self) -> SSL.Context:
        """A context with OpenSSL's defaults, to show what the options change."""
        context = SSL.Context(SSL.TLS_METHOD)
        context.use_certificate(self.material.certificate)
        context.use_privatekey(self.material.key)
        return context

    def test_twisted_options_with_pistatsd_additions(self):
        options = server_options(self.material)
        self.assertIsInstance(options, CertificateOptions)
        context = options.getContext()
        flags = context.set_options(0)  # adds nothing; returns the options set
        for flag in ("NO_RENEGOTIATION", "NO_TICKET", "NO_COMPRESSION", "NO_TLSv1", "NO_TLSv1_1"):
            self.assertTrue(flags & getattr(SSL, "OP_" + flag), flag)
        self.assertEqual(context.get_session_cache_mode(), SSL.SESS_CACHE_OFF)

    def test_chain_served_and_alpn_offer_ignored(self):
        client_context = SSL.Context(SSL.TLS_METHOD)
        client_context.set_alpn_protos([b"h2", b"http/1.1"])
        client = MemoryHandshake(server_options(self.material).getContext(), client_context).client
        chain = [c.to_cryptography() for c in client.get_peer_cert_chain()]
        self.assertEqual(chain, [self.material.certificate, self.ca_cert])
        self.assertEqual(client.get_alpn_proto_negotiated(), b"")

    def test_renegotiation_refused(self):
        # Even where OpenSSL is configured to allow client-initiated
        # renegotiation (its default is to refuse it), ours refuses it.
        plain = self.plain_context()
        plain.set_options(OP_ALLOW_CLIENT_RENEGOTIATION)
        self.assertTrue(MemoryHandshake(plain, client_tls12()).renegotiated())
        self.assertTrue(MemoryHandshake(plain, client_tls12()).server.renegotiate())

        ours = server_options(self.material).getContext()
        ours.set_options(OP_ALLOW_CLIENT_RENEGOTIATION)
        with self.assertRaises(SSL.Error) as raised:
            MemoryHandshake(ours, client_tls12()).renegotiated()
        self.assertIn("no renegotiation", str(raised.exception))
        with self.assertRaises(SSL.Error):  # nor does it start one
            MemoryHandshake(ours, client_tls12()).server.renegotiate()

    def test_dhe_rsa_with_dh_parameters(self):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name("localhost"))
            .issuer_name(_name("localhost"))
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(datetime.datetime(2020, 1, 1, tzinfo=UTC))
            .not_valid_after(datetime.datetime(2100, 1, 1, tzinfo=UTC))
            .sign(key, hashes.SHA256())
        )
        material = KeyMaterial(key, cert, (), "key.pem", "cert.pem")
        options = server_options(material, write(self.mktemp(), FFDHE2048))
        handshake = MemoryHandshake(
            options.getContext(), client_tls12(b"DHE-RSA-AES128-GCM-SHA256")
        )
        self.assertEqual(handshake.client.get_cipher_name(), "DHE-RSA-AES128-GCM-SHA256")

    def test_bad_dh_parameters(self):
        missing = os.path.abspath(self.mktemp())
        junk = write(self.mktemp(), b"not parameters")
        for path, reason in [
            (missing, f"cannot read Diffie-Hellman parameters {missing}: No such file"),
            (junk, f"bad Diffie-Hellman parameters {junk}: "),
        ]:
            with self.assertRaises(ConfigError) as raised:
                server_options(self.material, path)
            self.assertIn(reason, str(raised.exception))


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


# -- the real plugin over loopback -------------------------------------------

FINGERPRINT = re.compile(r"SHA-256 fingerprint ([0-9A-F:]{95})")


def tls_daemon(start, state_dir: str, *extra: str, **kw) -> tuple[Daemon, int]:
    d = start("--tls", "ssl:0:interface=127.0.0.1", "--state-dir", state_dir, *extra, **kw)
    return d, d.bound_port("tls")


#: An OpenSSL configuration that allows everything by default (security level
#: 0, no minimum version), as some distributions ship: whatever is refused
#: under it, pistatsd refuses by itself.
PERMISSIVE_OPENSSL_CONF = """\
openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
CipherString = ALL:@SECLEVEL=0
MinProtocol = None
"""


def permissive_openssl(tmp_path) -> dict[str, str]:
    conf = tmp_path / "openssl.cnf"
    conf.write_text(PERMISSIVE_OPENSSL_CONF)
    return {"OPENSSL_CONF": str(conf)}


def logged_fingerprint(d: Daemon) -> str:
    match = FINGERPRINT.search(d.text())
    assert match, d.text()
    return match.group(1)


def client_context(cafile: str | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.load_verify_locations(cafile=cafile)
    return context


def handshake(port: int, context: ssl.SSLContext, server_hostname: str) -> x509.Certificate:
    """One TLS handshake on loopback; the server's certificate."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der)


def https_get(port: int, path: str, context: ssl.SSLContext) -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection("localhost", port, timeout=10, context=context)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_generated_certificate_verifies_and_serves_https(daemon, tmp_path):
    d, port = tls_daemon(daemon, str(tmp_path / "state"))
    cafile = str(tmp_path / "state" / "tls" / "cert.pem")
    context = client_context(cafile)
    for name in ("localhost", "127.0.0.1"):
        served = handshake(port, context, name)
    assert fingerprint(served) == logged_fingerprint(d)
    from service_identity.cryptography import (
        verify_certificate_hostname,
        verify_certificate_ip_address,
    )

    verify_certificate_hostname(served, "localhost")
    verify_certificate_ip_address(served, "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(port, context, "not-this-host.example")
    assert https_get(port, "/sum?a=1&b=2", context) == (200, b"Sum: 3")
    status, body = https_get(port, "/stats", context)
    assert status == 200 and "cpu" in json.loads(body)
    # The plain port serves the same tree.
    assert d.get("/sum?a=1&b=2")[2] == b"Sum: 3"


def test_generated_certificate_is_reused_across_restarts(daemon, tmp_path):
    state = str(tmp_path / "state")
    first, port = tls_daemon(daemon, state)
    before = fingerprint(handshake(port, client_context(), "localhost"))
    assert first.stop() == 0
    second, port = tls_daemon(daemon, state)
    after = fingerprint(handshake(port, client_context(), "localhost"))
    assert after == before == logged_fingerprint(first) == logged_fingerprint(second)
    assert "Generated a self-signed certificate" in first.text()
    assert "Generated a self-signed certificate" not in second.text()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize(
    ("version", "accepted"),
    [
        (ssl.TLSVersion.TLSv1, False),
        (ssl.TLSVersion.TLSv1_1, False),
        (ssl.TLSVersion.TLSv1_2, True),
        (ssl.TLSVersion.TLSv1_3, True),
    ],
    ids=["TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"],
)
def test_tls_versions(daemon, tmp_path, version, accepted):
    _, port = tls_daemon(daemon, str(tmp_path / "state"), env=permissive_openssl(tmp_path))
    context = client_context()
    # Let this client really offer old versions (OpenSSL 3 refuses them at its
    # default security level), so a refusal comes from the server.
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.minimum_version = version
    context.maximum_version = version
    if accepted:
        handshake(port, context, "localhost")
    else:
        with pytest.raises(ssl.SSLError) as raised:
            handshake(port, context, "localhost")
        assert "PROTOCOL_VERSION" in str(raised.value).upper()


def test_only_forward_secret_aead_ciphers(daemon, tmp_path):
    _, port = tls_daemon(daemon, str(tmp_path / "state"), env=permissive_openssl(tmp_path))
    for cipher, accepted in [
        ("ECDHE-ECDSA-AES128-GCM-SHA256", True),
        ("ECDHE-ECDSA-CHACHA20-POLY1305", True),
        ("ECDHE-ECDSA-AES128-SHA", False),
        ("ECDHE-ECDSA-AES256-SHA384", False),
    ]:
        context = client_context()
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(cipher + ":@SECLEVEL=0")
        if accepted:
            handshake(port, context, "localhost")
        else:
            with pytest.raises(ssl.SSLError):
                handshake(port, context, "localhost")


def test_cert_and_key_options_are_honoured(daemon, tmp_path):
    ca_key, ca_cert = make_ca()
    key, cert = make_leaf(ca_key, ca_cert)
    cafile = write(str(tmp_path / "ca.pem"), cert_pem(ca_cert))
    certfile = write(str(tmp_path / "cert.pem"), cert_pem(cert))
    keyfile = write(str(tmp_path / "key.pem"), key_pem(key))
    state = tmp_path / "state"
    d, port = tls_daemon(daemon, str(state), "--cert", certfile, "--key", keyfile)
    served = handshake(port, client_context(cafile), "localhost")
    assert fingerprint(served) == fingerprint(cert) == logged_fingerprint(d)
    assert https_get(port, "/sum?a=1&b=2", client_context(cafile)) == (200, b"Sum: 3")
    assert not (state / "tls").exists()


def test_mismatched_key_stops_startup_with_one_line(tmp_path):
    _, cert = make_leaf(*make_ca())
    certfile = write(str(tmp_path / "cert.pem"), cert_pem(cert))
    other = write(str(tmp_path / "other.pem"), key_pem(ec.generate_private_key(ec.SECP256R1())))
    result = run_twistd(
        [
            "-n",
            "--pidfile=",
            "pistatsd",
            "--port",
            LOOPBACK,
            "--tls",
            "ssl:0:interface=127.0.0.1",
            "--cert",
            certfile,
            "--key",
            other,
        ]
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert (
        f"--tls ssl:0:interface=127.0.0.1: key {other} does not match certificate {certfile}"
        in output
    )
    assert "Traceback" not in output
