"""TLS endpoints: HTTPS and WSS on every C{--tls} string.

An C{ssl:} string is read with Twisted's endpoint grammar and Twisted's C{ssl:}
parameters, and served with Twisted's L{CertificateOptions}; pistatsd adds
the same policy on every TLS port (L{CIPHERS}, no renegotiation) and chooses
the key material:

 1. the C{privateKey=}/C{certKey=} files the string names, if any;
 2. else C{--key}/C{--cert};
 3. else a self-signed certificate generated once in
    C{<state dir>/tls/} and reused on every restart.

Any other endpoint type (C{tcp:}, C{unix:}, or a plugin such as C{txsni:} or
C{le:}) is handed to L{serverFromString} unchanged: a custom TLS wrapper is
welcome, and brings its own certificates.

Problems with the key material (L{pistatsd.certificates}: missing or
unreadable files, a key that does not belong to its certificate, an
encrypted key) raise L{pistatsd.config.ConfigError} with one line naming the
option, so
L{check_tls} can run with the other option validators and stop start-up
before twistd daemonises.
"""

from __future__ import annotations

import datetime

from attrs import frozen
from OpenSSL import SSL
from twisted.internet.endpoints import SSL4ServerEndpoint, _parse
from twisted.internet.interfaces import IReactorSSL, IStreamServerEndpoint
from twisted.internet.ssl import (
    AcceptableCiphers,
    CertificateOptions,
    DiffieHellmanParameters,
    TLSVersion,
)
from twisted.logger import Logger
from twisted.python.filepath import FilePath

from pistatsd.certificates import (
    KeyMaterial,
    certificate_names,
    ensure_self_signed,
    load_key_material,
    read,
)
from pistatsd.config import Config, ConfigError
from pistatsd.listening import server_endpoint
from pistatsd.reactors import stored_only

_log = Logger()

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

#: Twisted's C{ssl:} parameters, in its positional order (after the type).
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


@frozen
class SSLDescription:
    """The parameters of an C{ssl:} endpoint string that pistatsd uses."""

    port: int
    interface: str = ""
    backlog: int = 50
    private_key: str | None = None
    cert_key: str | None = None
    extra_cert_chain: str | None = None
    dh_parameters: str | None = None


def _split(description: str) -> tuple[list[str], dict[str, str]]:
    """Positional and keyword parameters of an endpoint string, by Twisted's grammar.

    Twisted's C{_parse} is private, but it is the tokeniser L{serverFromString}
    itself runs, so C{ssl:} strings mean here what they mean to every Twisted
    program (C{:} separates, a backslash escapes, C{name=value} is a keyword).
    L{serverFromString} cannot do the job for C{ssl:}: it reads the key
    files itself (C{server.pem} in the current directory when the string
    names none), keeps only the first certificate of a bundle, builds its own
    default options, and hides the port and interface in the endpoint it
    returns.  The built-in C{ssl:} parser also wins over any plugin, so a
    plugin cannot claim the prefix.  The tests pin the grammar.
    """
    try:
        return _parse(description)
    except RuntimeError:  # its tokeniser runs past the end after a backslash
        raise ConfigError("trailing backslash") from None


def endpoint_type(description: str) -> str:
    """The endpoint type of a description (C{ssl}, C{tcp}, ...), or "" when there is none."""
    try:
        args, _ = _split(description)
    except ConfigError:
        return ""
    return args[0] if args else ""


def parse_ssl(description: str) -> SSLDescription:
    """Parse an C{ssl:} string; the same parameters as Twisted's, minus C{sslmethod}.

    @raise ConfigError: on an unknown, repeated or malformed parameter (the
        message does not name the option; callers add it).
    """
    args, kwargs = _split(description)
    if not args or args[0] != "ssl":
        raise ConfigError("not an ssl: endpoint")
    if len(args) - 1 > len(_SSL_PARAMETERS):
        raise ConfigError("too many parameters")
    values = dict(zip(_SSL_PARAMETERS, args[1:], strict=False))
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
    port = _integer(values["port"], "port")
    if not 0 <= port <= 65535:
        raise ConfigError(f"port {port} is out of range")
    backlog = _integer(values.get("backlog", "50"), "backlog")
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


def _integer(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"invalid {what} {text!r}") from None


def key_material(ssl: SSLDescription, config: Config) -> KeyMaterial:
    """The key material one C{ssl:} endpoint uses: its own files, C{--key}/C{--cert},
    or the generated certificate.

    With only one of a key and a certificate named, that file must hold both
    (Twisted's C{privateKey=} convention).
    """
    if ssl.private_key or ssl.cert_key:
        key_path, cert_path = ssl.private_key or ssl.cert_key, ssl.cert_key or ssl.private_key
    elif config.key or config.cert:
        key_path, cert_path = config.key or config.cert, config.cert or config.key
    elif ssl.extra_cert_chain is not None:
        raise ConfigError("extraCertChain needs a certificate (--cert or certKey=)")
    else:
        return ensure_self_signed(config.state_dir)
    assert key_path is not None and cert_path is not None
    return load_key_material(key_path, cert_path, ssl.extra_cert_chain)


class _ServerContext(SSL.Context):
    """The OpenSSL context L{server_options} has Twisted make: no renegotiation, no ALPN.

    Renegotiation is refused where the context is made, not on the one
    C{getContext} caches: so it holds for every context Twisted makes from
    the options, cached or not (Twisted calls the cache deprecated), and
    Twisted's own C{set_options} afterwards only adds flags.

    Twisted releases after 25.5 install an ALPN selection callback on every
    context, asked for or not.  pyOpenSSL's callbacks live in writable and
    executable memory (cffi), which systemd's C{MemoryDenyWriteExecute=yes}
    forbids: making the context would raise C{MemoryError}.  pistatsd offers
    no protocol to negotiate (HTTP/1.1 only), so the callback could only
    ever answer "none"; without it OpenSSL ignores the client's ALPN offer,
    which comes to the same.  (Twisted 25.5 and older probe ALPN on a fresh
    context of their own at each connection to a web site instead, which no
    context here can prevent.)  C{tests/test_tls_mdwe.py} shows both under
    real write-xor-execute.
    """

    def __init__(self, method: int) -> None:
        super().__init__(method)
        self.set_options(SSL.OP_NO_RENEGOTIATION)

    def set_alpn_select_callback(self, callback: object) -> None:
        """Install nothing: there is no application protocol to select."""


class _ServerOptions(CertificateOptions):
    """L{CertificateOptions} whose contexts are L{_ServerContext}s."""

    _contextFactory = _ServerContext


def server_options(material: KeyMaterial, dh_parameters: str | None = None) -> CertificateOptions:
    """The TLS options of every pistatsd C{ssl:} port, around one key and certificate.

    Twisted's L{CertificateOptions} already gives TLS 1.2 minimum
    (C{raiseMinimumTo} says so even if its default changes), no compression,
    server cipher preference, single-use (EC)DH keys, no session tickets (a
    ticket key living for months would undo forward secrecy), no session
    cache and small buffers on idle connections; pistatsd adds L{CIPHERS}
    and L{_ServerContext}.

    The context is made now, so a problem shows at start-up rather than at
    the first handshake.

    @raise ConfigError: when OpenSSL refuses the key, certificate or
        Diffie-Hellman parameters.
    """
    dh = None
    if dh_parameters is not None:
        read(dh_parameters, "Diffie-Hellman parameters")  # a missing file, said plainly
        try:
            SSL.Context(SSL.TLS_METHOD).load_tmp_dh(dh_parameters)
        except SSL.Error as e:
            raise ConfigError(f"bad Diffie-Hellman parameters {dh_parameters}: {e}") from None
        dh = DiffieHellmanParameters.fromFile(FilePath(dh_parameters))
    try:
        options = _ServerOptions(
            # cryptography objects, which pyOpenSSL takes in place of its own
            # (deprecated) ones: CertificateOptions only hands them on.
            privateKey=material.key,  # type: ignore[arg-type]
            certificate=material.certificate,  # type: ignore[arg-type]
            extraCertChain=list(material.chain),  # type: ignore[arg-type]
            acceptableCiphers=AcceptableCiphers.fromOpenSSLCipherString(CIPHERS),
            raiseMinimumTo=TLSVersion.TLSv1_2,
            dhParameters=dh,
        )
        options.getContext()
    except (SSL.Error, ValueError) as e:
        raise ConfigError(f"OpenSSL refused the key, certificate or parameters: {e}") from None
    return options


def _build(
    reactor: IReactorSSL, description: str, config: Config
) -> tuple[IStreamServerEndpoint, KeyMaterial | None]:
    """The endpoint for one C{--tls} string, and the key material of an C{ssl:} one.

    @raise ConfigError: without the option's name.
    """
    if endpoint_type(description) != "ssl":
        try:
            return server_endpoint(reactor, description), None
        except Exception as e:
            raise ConfigError(str(e)) from None
    ssl = parse_ssl(description)
    material = key_material(ssl, config)
    options = server_options(material, ssl.dh_parameters)
    endpoint = SSL4ServerEndpoint(
        reactor, ssl.port, options, backlog=ssl.backlog, interface=ssl.interface
    )
    return endpoint, material


def tls_endpoint(reactor: IReactorSSL, description: str, config: Config) -> IStreamServerEndpoint:
    """The listening endpoint for one C{--tls} string.

    C{ssl:} strings get pistatsd's TLS options and key material (see the
    module docstring), keeping the string's port, C{interface=} and
    C{backlog=}; the certificate's SHA-256 fingerprint is logged, so a user
    can check what a browser shows.  Other endpoint types are passed to
    L{serverFromString} unchanged.

    @raise pistatsd.errors.StartupError: one line naming C{--tls} and the
        problem (also when L{check_tls} did not run first: a file that
        changed in between).
    """
    kind = endpoint_type(description)
    if kind in _PLAINTEXT:
        _log.warn(
            "--tls {description}: a {kind}: endpoint is plain text; "
            "it serves HTTP, not HTTPS (use ssl: or a TLS endpoint plugin)",
            description=description,
            kind=kind,
        )
    try:
        endpoint, material = _build(reactor, description, config)
    except ConfigError as e:
        raise ConfigError(f"--tls {description}: {e}") from None
    if material is not None:
        _log_certificate(description, material)
    return endpoint


def _log_certificate(description: str, material: KeyMaterial) -> None:
    not_after = material.certificate.not_valid_after_utc
    _log.info(
        "TLS on {description}: {origin} certificate {cert_path} for {names}, "
        "valid until {not_after}, SHA-256 fingerprint {fingerprint}",
        description=description,
        origin="self-signed" if material.generated else "the",
        cert_path=material.cert_path,
        key_path=material.key_path,
        names=", ".join(certificate_names(material.certificate)) or "(no names)",
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
    checked even when no C{ssl:} port uses them (when one does, its error
    names the C{--tls} string first).  The endpoints are built on a stand-in
    reactor: no reactor is installed yet (L{stored_only}).
    """
    reactor = stored_only()
    for description in config.tls:
        try:
            _build(reactor, description, config)
        except ConfigError as e:
            raise ConfigError(f"--tls {description}: {e}") from None
    if config.cert or config.key:
        key_path = config.key or config.cert
        cert_path = config.cert or config.key
        assert key_path is not None and cert_path is not None
        try:
            load_key_material(key_path, cert_path)
        except ConfigError as e:
            raise ConfigError(f"--cert/--key: {e}") from None
