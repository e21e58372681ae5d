"""TLS endpoints: HTTPS and WSS on every C{--tls} string.

An C{ssl:} string is built here rather than by Twisted's own C{ssl:} parser, so
that every TLS port gets the same policy (TLS 1.2 or newer, forward-secret AEAD
ciphers, no renegotiation) and the same key material:

 1. the C{privateKey=}/C{certKey=} files the string names, if any;
 2. else C{--key}/C{--cert};
 3. else a self-signed certificate generated once in
    C{<state dir>/tls/} and reused on every restart.

Any other endpoint type (C{tcp:}, C{unix:}, or a plugin such as C{txsni:} or
C{le:}) is handed to L{serverFromString} unchanged: a custom TLS wrapper is
welcome, and brings its own certificates.

Problems with the key material (missing or unreadable files, a key that does
not belong to its certificate, an encrypted key) raise
L{pistatsd.config.ConfigError} with one line naming the option, so
L{check_tls} can run with the other option validators and stop start-up
before twistd daemonises.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import ipaddress
import os
import secrets
import socket
import tempfile
from typing import Any

from attrs import evolve, frozen
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL
from twisted.internet.endpoints import SSL4ServerEndpoint, serverFromString
from twisted.internet.interfaces import (
    IOpenSSLContextFactory,
    IOpenSSLServerConnectionCreator,
    IStreamServerEndpoint,
)
from twisted.logger import Logger
from zope.interface import implementer

from pistatsd.config import Config, ConfigError
from pistatsd.listening import StartupFailed

_log = Logger()

#: How long a generated certificate is valid.  Nobody rotates the certificate
#: of a Raspberry Pi in a cupboard; ten years outlives the SD card.
SELF_SIGNED_DAYS = 3650

#: Mozilla's "intermediate" TLS 1.2 suites: forward secrecy and AEAD only.
#: (TLS 1.3 suites are all fine and are not affected by this list.)
CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
)

#: Endpoint types that are plain text: given to C{--tls}, they serve HTTP.
_PLAINTEXT = frozenset({"tcp", "tcp6", "unix", "systemd", "stdio"})

#: Twisted's C{ssl:} parameters, in positional order (after the type).
_SSL_PARAMETERS = (
    "port",
    "privateKey",
    "certKey",
    "sslmethod",
    "interface",
    "backlog",
    "extraCertChain",
    "dhParameters",
)


class TLSStartupError(StartupFailed, ConfigError):
    """A C{--tls} problem found while building the service (after option parsing).

    A L{ConfigError}, for callers that check; also a L{StartupFailed}
    (C{SystemExit}), so twistd stops with the one line and no traceback even
    when L{check_tls} did not run first (a C{.tac} file, or a file that
    changed in between).
    """


@frozen
class KeyMaterial:
    """A private key, the certificate it belongs to, and the chain sent with it.

    @ivar generated: True for the self-signed certificate pistatsd made itself.
    """

    key: CertificateIssuerPrivateKeyTypes
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    key_path: str
    cert_path: str
    generated: bool = False

    @property
    def fingerprint(self) -> str:
        """The certificate's SHA-256 fingerprint, as browsers and C{openssl x509} show it."""
        return fingerprint(self.certificate)


@frozen
class SSLDescription:
    """The parts of an C{ssl:} endpoint string, parsed with Twisted's grammar."""

    port: int
    interface: str = ""
    backlog: int = 50
    private_key: str | None = None
    cert_key: str | None = None
    extra_cert_chain: str | None = None
    dh_parameters: str | None = None


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, as colon-separated upper-case hex."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def split_endpoint(description: str) -> tuple[list[str], dict[str, str]]:
    """Split an endpoint string the way L{serverFromString} does.

    Parameters are separated by C{:}; C{name=value} is a keyword parameter
    (only the first C{=} counts); a backslash escapes the next character, so
    C{interface=\\:\\:1} is an IPv6 address.  The first positional value is the
    endpoint type.

    @raise ValueError: on a trailing backslash.
    """
    args: list[str] = []
    kwargs: dict[str, str] = {}
    parts: list[str] = []
    current = ""
    escaped = False
    for char in description:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            parts.append(current)
            _add_parameter(parts, args, kwargs)
            parts, current = [], ""
        elif char == "=" and not parts:
            parts.append(current)
            current = ""
        else:
            current += char
    if escaped:
        raise ValueError("trailing backslash")
    parts.append(current)
    _add_parameter(parts, args, kwargs)
    return args, kwargs


def _add_parameter(parts: list[str], args: list[str], kwargs: dict[str, str]) -> None:
    if len(parts) == 1:
        args.append(parts[0])
    else:
        kwargs[parts[0]] = parts[1]


def endpoint_type(description: str) -> str:
    """The endpoint type of a description (C{ssl}, C{tcp}, ...)."""
    try:
        args, _ = split_endpoint(description)
    except ValueError:
        return ""
    return args[0] if args else ""


def parse_ssl(description: str) -> SSLDescription:
    """Parse an C{ssl:} string; the same parameters as Twisted's, minus C{sslmethod}.

    @raise ConfigError: on an unknown, repeated or malformed parameter (the
        message does not name the option; callers add it).
    """
    try:
        args, kwargs = split_endpoint(description)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if not args or args[0] != "ssl":
        raise ConfigError("not an ssl: endpoint")
    positional = args[1:]
    if len(positional) > len(_SSL_PARAMETERS):
        raise ConfigError("too many parameters")
    values: dict[str, str] = dict(zip(_SSL_PARAMETERS, positional, strict=False))
    for name, value in kwargs.items():
        if name not in _SSL_PARAMETERS:
            raise ConfigError(f"unknown parameter {name!r}")
        if name in values:
            raise ConfigError(f"parameter {name!r} given twice")
        values[name] = value
    if "sslmethod" in values:
        raise ConfigError("sslmethod is not supported: pistatsd always negotiates TLS 1.2 or newer")
    if "port" not in values:
        raise ConfigError("no port number")
    try:
        port = int(values["port"])
    except ValueError:
        raise ConfigError(f"invalid port {values['port']!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"port {port} is out of range")
    try:
        backlog = int(values.get("backlog", "50"))
    except ValueError:
        raise ConfigError(f"invalid backlog {values['backlog']!r}") from None
    if backlog < 1:
        raise ConfigError(f"backlog {backlog} must be positive")
    return SSLDescription(
        port=port,
        interface=values.get("interface", ""),
        backlog=backlog,
        private_key=values.get("privateKey") or None,
        cert_key=values.get("certKey") or None,
        extra_cert_chain=values.get("extraCertChain") or None,
        dh_parameters=values.get("dhParameters") or None,
    )


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror or e}") from None


def _load_certificates(path: str, what: str) -> list[x509.Certificate]:
    data = _read(path, what)
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        certificates = []
    if not certificates:
        raise ConfigError(f"{what} {path} holds no PEM certificate")
    return certificates


def load_key_material(key_path: str, cert_path: str, chain_path: str | None = None) -> KeyMaterial:
    """Load and check a PEM private key and certificate (the same file may hold both).

    The certificate file may hold the whole chain (Let's Encrypt's
    C{fullchain.pem}): the first certificate is the server's, the others are
    sent along with it.

    @raise ConfigError: when a file is missing or unreadable, holds no usable
        PEM data, the key is encrypted, or the key does not match the certificate.
    """
    key_pem = _read(key_path, "key")
    certificates = _load_certificates(cert_path, "certificate")
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise ConfigError(
            f"key {key_path} is protected by a passphrase; "
            "give pistatsd an unencrypted key file (mode 0600)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"key {key_path} holds no usable PEM private key") from None
    if not isinstance(key, CertificateIssuerPrivateKeyTypes):
        raise ConfigError(f"key {key_path}: unsupported key type {type(key).__name__}")
    leaf, chain = certificates[0], certificates[1:]
    if _public_bytes(key.public_key()) != _public_bytes(leaf.public_key()):
        raise ConfigError(f"key {key_path} does not match certificate {cert_path}")
    if chain_path is not None:
        chain += _load_certificates(chain_path, "certificate chain")
    return KeyMaterial(
        key=key,
        certificate=leaf,
        chain=tuple(chain),
        key_path=key_path,
        cert_path=cert_path,
    )


def _public_bytes(public_key: Any) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def self_signed_paths(state_dir: str) -> tuple[str, str]:
    """Where the generated key and certificate live: C{<state_dir>/tls/key.pem, cert.pem}."""
    directory = os.path.join(state_dir, "tls")
    return os.path.join(directory, "key.pem"), os.path.join(directory, "cert.pem")


def subject_alternative_names(hostname: str) -> list[x509.GeneralName]:
    """The names a generated certificate is valid for.

    The hostname, C{<hostname>.local} (how Raspberry Pis are reached over
    mDNS) when the hostname has no dot, C{localhost}, C{127.0.0.1} and C{::1}.
    """
    names: list[str] = []
    hostname = hostname.strip().rstrip(".").lower()
    if hostname and hostname.isascii() and _not_an_address(hostname):
        names.append(hostname)
        if "." not in hostname and hostname != "localhost":
            names.append(hostname + ".local")
    if "localhost" not in names:
        names.append("localhost")
    general: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    general += [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    return general


def _not_an_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return True
    return False


def generate_self_signed(
    hostname: str, now: datetime.datetime | None = None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A fresh EC P-256 key and a self-signed certificate for it.

    P-256 rather than RSA: a handshake costs a Raspberry Pi a fraction of the
    CPU, and every TLS client of the last decade accepts it.  The validity
    starts a day early, for clients whose clocks run behind (a Pi without a
    real-time clock, before NTP catches up).
    """
    if now is None:
        now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    common_name = (hostname.strip().rstrip(".") or "localhost")[:64]
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pistatsd self-signed"),
        ]
    )
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(subject_alternative_names(hostname)), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def ensure_self_signed(
    state_dir: str, hostname: str | None = None, now: datetime.datetime | None = None
) -> KeyMaterial:
    """The generated key and certificate, made first if they are missing or expired.

    Files: C{<state_dir>/tls/key.pem} (mode 0600) and C{cert.pem}, in a 0700
    directory, each written to a temporary file, synced and renamed, so a
    power cut leaves either the old pair or the new one.  A lock keeps two
    processes sharing the state directory from interleaving their pairs.

    @raise ConfigError: when the directory or files cannot be created, or the
        existing pair is unusable (it is never silently overwritten).
    """
    if now is None:
        now = datetime.datetime.now(datetime.UTC)
    key_path, cert_path = self_signed_paths(state_dir)
    directory = os.path.dirname(key_path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if os.stat(directory).st_mode & 0o077:
            os.chmod(directory, 0o700)
        lock = os.open(os.path.join(directory, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise ConfigError(
            f"cannot create {directory} for the generated certificate: {e.strerror or e}"
        ) from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(key_path) and os.path.exists(cert_path):
            try:
                material = load_key_material(key_path, cert_path)
            except ConfigError as e:
                raise ConfigError(
                    f"generated certificate unusable ({e}); remove {directory} to make a new one"
                ) from None
            if material.certificate.not_valid_after_utc > now:
                return evolve(material, generated=True)
            _log.warn(
                "Generated certificate {cert_path} expired on {not_after}; making a new one",
                cert_path=cert_path,
                not_after=material.certificate.not_valid_after_utc.isoformat(),
            )
        key, certificate = generate_self_signed(hostname or socket.gethostname(), now)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            # Old certificate out, then the key, then the certificate: a crash
            # anywhere leaves no certificate, so the next start makes a whole
            # new pair instead of finding a key that does not match.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(cert_path)
            _write_atomically(key_path, key_pem, 0o600)
            cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
            _write_atomically(cert_path, cert_pem, 0o644)
        except OSError as e:
            raise ConfigError(
                f"cannot write the generated certificate to {directory}: {e.strerror or e}"
            ) from None
        _log.info(
            "Generated a self-signed certificate {cert_path} for {names}",
            cert_path=cert_path,
            names=", ".join(_names(certificate)),
        )
        return KeyMaterial(
            key=key,
            certificate=certificate,
            chain=(),
            key_path=key_path,
            cert_path=cert_path,
            generated=True,
        )
    finally:
        os.close(lock)


def _names(certificate: x509.Certificate) -> list[str]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [str(name.value) for name in san.value]


def _write_atomically(path: str, data: bytes, mode: int) -> None:
    """Write C{data} to C{path} via a synced temporary file and a rename."""
    directory, name = os.path.split(path)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def key_material(ssl: SSLDescription, config: Config) -> KeyMaterial:
    """The key material one C{ssl:} endpoint uses: its own files, C{--key}/C{--cert},
    or the generated certificate.

    With only one of a key and a certificate named, that file must hold both
    (Twisted's C{privateKey=} convention).
    """
    if ssl.private_key or ssl.cert_key:
        key_path = ssl.private_key or ssl.cert_key
        cert_path = ssl.cert_key or ssl.private_key
    elif config.key or config.cert:
        key_path = config.key or config.cert
        cert_path = config.cert or config.key
    else:
        material = ensure_self_signed(config.state_dir)
        if ssl.extra_cert_chain is not None:
            raise ConfigError("extraCertChain needs a certificate (--cert or certKey=)")
        return material
    assert key_path is not None and cert_path is not None
    return load_key_material(key_path, cert_path, ssl.extra_cert_chain)


@implementer(IOpenSSLServerConnectionCreator, IOpenSSLContextFactory)
class ServerTLSPolicy:
    """The TLS policy of every pistatsd C{ssl:} port, around one key and certificate.

    TLS 1.2 minimum (1.3 when the client has it), forward-secret AEAD ciphers
    (L{CIPHERS}), no compression, no renegotiation, no session tickets (a
    ticket key living for months would undo forward secrecy), small buffers
    on idle connections -- Twisted's C{CertificateOptions} choices, minus
    its ALPN callback.

    Why not C{CertificateOptions} itself: it always installs an ALPN
    selection callback, and pyOpenSSL's callbacks need writable and
    executable memory (cffi), which systemd's C{MemoryDenyWriteExecute=yes}
    forbids: the first handshake would fail.  This context has no callbacks.

    The context is built once, when the policy is made, so a problem shows at
    start-up rather than at the first handshake.

    @ivar material: the key and certificate served.
    """

    def __init__(self, material: KeyMaterial, dh_parameters: str | None = None) -> None:
        self.material = material
        context = SSL.Context(SSL.TLS_METHOD)
        try:
            context.set_min_proto_version(SSL.TLS1_2_VERSION)
            context.set_options(
                SSL.OP_NO_COMPRESSION
                | SSL.OP_CIPHER_SERVER_PREFERENCE
                | SSL.OP_NO_RENEGOTIATION
                | SSL.OP_NO_TICKET
                | SSL.OP_SINGLE_DH_USE
                | SSL.OP_SINGLE_ECDH_USE
            )
            context.set_mode(SSL.MODE_RELEASE_BUFFERS)
            context.use_certificate(material.certificate)
            context.use_privatekey(material.key)
            for certificate in material.chain:
                context.add_extra_chain_cert(certificate)
            context.check_privatekey()
            context.set_cipher_list(CIPHERS.encode("ascii"))
            context.set_session_id(secrets.token_hex(7).encode("ascii"))
            context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        except SSL.Error as e:
            raise ConfigError(f"OpenSSL refused the key or certificate: {e}") from None
        if dh_parameters is not None:
            _read(dh_parameters, "Diffie-Hellman parameters")
            try:
                context.load_tmp_dh(dh_parameters.encode())
            except SSL.Error as e:
                raise ConfigError(f"bad Diffie-Hellman parameters {dh_parameters}: {e}") from None
        self._context = context

    def getContext(self) -> SSL.Context:
        """The shared OpenSSL context (L{IOpenSSLContextFactory})."""
        return self._context

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        """A server connection for one TLS client (L{IOpenSSLServerConnectionCreator})."""
        return SSL.Connection(self._context, None)


def tls_endpoint(reactor: Any, description: str, config: Config) -> IStreamServerEndpoint:
    """The listening endpoint for one C{--tls} string.

    C{ssl:} strings get pistatsd's TLS policy and key material (see the module
    docstring), keeping the string's port, C{interface=} and C{backlog=}; the
    certificate's SHA-256 fingerprint is logged, so a user can check what a
    browser shows.  Other endpoint types are passed to L{serverFromString}
    unchanged.

    @raise TLSStartupError: (a L{ConfigError}) one line naming C{--tls} and
        the problem.
    """
    kind = endpoint_type(description)
    if kind != "ssl":
        if kind in _PLAINTEXT:
            _log.warn(
                "--tls {description}: a {kind}: endpoint is plain text; "
                "it serves HTTP, not HTTPS (use ssl: or a TLS endpoint plugin)",
                description=description,
                kind=kind,
            )
        try:
            return serverFromString(reactor, description)
        except Exception as e:
            raise TLSStartupError(f"--tls {description}: {e}") from None
    try:
        ssl = parse_ssl(description)
        material = key_material(ssl, config)
        policy = ServerTLSPolicy(material, ssl.dh_parameters)
    except ConfigError as e:
        raise TLSStartupError(f"--tls {description}: {e}") from None
    _log_certificate(description, material)
    return SSL4ServerEndpoint(
        reactor, ssl.port, policy, backlog=ssl.backlog, interface=ssl.interface
    )


def _log_certificate(description: str, material: KeyMaterial) -> None:
    not_after = material.certificate.not_valid_after_utc
    _log.info(
        "TLS on {description}: {origin} certificate {cert_path} for {names}, "
        "valid until {not_after}, SHA-256 fingerprint {fingerprint}",
        description=description,
        origin="self-signed" if material.generated else "the",
        cert_path=material.cert_path,
        key_path=material.key_path,
        names=", ".join(_names(material.certificate)) or "(no names)",
        not_after=not_after.date().isoformat(),
        fingerprint=material.fingerprint,
        generated=material.generated,
    )
    if not_after < datetime.datetime.now(datetime.UTC):
        _log.warn(
            "TLS on {description}: certificate {cert_path} expired on {not_after}; "
            "clients will refuse it",
            description=description,
            cert_path=material.cert_path,
            not_after=not_after.isoformat(),
        )


def check_tls(config: Config) -> None:
    """Option validator: every C{--tls} string parses and its key material is usable.

    Runs with the other validators, before twistd daemonises, so a bad key or
    certificate stops start-up on the terminal with one line.  Makes the
    self-signed certificate if an C{ssl:} port needs it (so a state directory
    that cannot be written is reported here too).  C{--cert}/C{--key} are
    checked even when no C{ssl:} port uses them.
    """
    from twisted.internet import reactor

    uses_options = False
    for description in config.tls:
        if endpoint_type(description) != "ssl":
            try:
                serverFromString(reactor, description)
            except Exception as e:
                raise ConfigError(f"--tls {description}: {e}") from None
            continue
        try:
            ssl = parse_ssl(description)
            if not (ssl.private_key or ssl.cert_key):
                uses_options = True
            material = key_material(ssl, config)
            ServerTLSPolicy(material, ssl.dh_parameters)
        except ConfigError as e:
            raise ConfigError(f"--tls {description}: {e}") from None
    if (config.cert or config.key) and not uses_options:
        key_path = config.key or config.cert
        cert_path = config.cert or config.key
        assert key_path is not None and cert_path is not None
        try:
            load_key_material(key_path, cert_path)
        except ConfigError as e:
            raise ConfigError(f"--cert/--key: {e}") from None
