"""TLS for real: handshakes against the plugin, versions, ciphers,
generated and given certificates."""

from __future__ import annotations

import datetime
import http.client
import json
import os
import re
import socket
import ssl
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from OpenSSL import SSL
from twisted.internet.ssl import CertificateOptions
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.certificates import (
    KeyMaterial,
    fingerprint,
)
from pistatsd.config import ConfigError
from pistatsd.tls import server_options
from tests.certificates import UTC, _name, cert_pem, key_pem, make_ca, make_leaf, write
from tests.daemon import LOOPBACK, Daemon, run_twistd

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
