"""TLS when the kernel refuses writable+executable memory, as under systemd's
C{MemoryDenyWriteExecute=yes}.

A wrapper turns the restriction on, then execs a small twisted.web site on
pistatsd's C{tls_endpoint}; the server checks the restriction holds in its
own process, and a real client fetches a page from it over loopback.  Two
ways to impose it, both tried:

 - C{mdwe}: the kernel's C{prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)}
   (Linux 6.3 and later; kept across C{execve});
 - C{seccomp}: the filter systemd installs for the setting (C{mmap} asking
   for write and execute, C{mprotect}/C{pkey_mprotect} asking for execute,
   C{shmat} with C{SHM_EXEC} all fail with C{EPERM}), through libseccomp.

pyOpenSSL's callbacks are cffi closures, which need such memory: Twisted's
L{CertificateOptions} with C{acceptableProtocols} (an ALPN callback) cannot
make its context under either, which shows the restriction bites.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import http.client
import mmap
import os
import ssl
import subprocess
import sys

import pytest
from OpenSSL import SSL
from twisted.internet.ssl import CertificateOptions

from tests.daemon import PROJECT, Daemon

#: Exit status of the wrapper when this machine cannot impose the restriction.
UNAVAILABLE = 3

#: Exit status of the server when write+execute memory is still allowed.
NOT_RESTRICTED = 4

_PR_SET_MDWE = 65
_PR_MDWE_REFUSE_EXEC_GAIN = 1

# libseccomp constants (seccomp.h).
_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_ACT_ERRNO = 0x00050000
_SCMP_CMP_MASKED_EQ = 7
_SHM_EXEC = 0o100000


class _ArgumentComparison(ctypes.Structure):
    """libseccomp's C{struct scmp_arg_cmp}."""

    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


def _set_mdwe() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_MDWE, _PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"PR_SET_MDWE: {os.strerror(number)} (needs Linux 6.3 or later)")


def _install_seccomp_filter() -> None:
    """systemd's C{MemoryDenyWriteExecute=yes} filter (C{seccomp-util.c})."""
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as e:
        raise OSError(errno.ENOENT, f"libseccomp: {e}") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = (ctypes.c_uint32,)
    lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    lib.seccomp_rule_add_array.argtypes = (
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgumentComparison),
    )
    lib.seccomp_load.argtypes = (ctypes.c_void_p,)
    lib.seccomp_release.argtypes = (ctypes.c_void_p,)
    write_execute = mmap.PROT_WRITE | mmap.PROT_EXEC
    rules = (
        ("mmap", write_execute),
        ("mprotect", mmap.PROT_EXEC),
        ("pkey_mprotect", mmap.PROT_EXEC),
        ("shmat", _SHM_EXEC),
    )
    context = lib.seccomp_init(_SCMP_ACT_ALLOW)
    if not context:
        raise OSError(errno.ENOMEM, "seccomp_init failed")
    try:
        for name, flags in rules:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            # The protection (or shmat flags) is the third argument of each.
            condition = _ArgumentComparison(2, _SCMP_CMP_MASKED_EQ, flags, flags)
            action = _SCMP_ACT_ERRNO | errno.EPERM
            result = lib.seccomp_rule_add_array(context, action, number, 1, condition)
            if result < 0:
                raise OSError(-result, f"seccomp rule for {name}: {os.strerror(-result)}")
        result = lib.seccomp_load(context)
        if result < 0:
            raise OSError(-result, f"seccomp_load: {os.strerror(-result)}")
    finally:
        lib.seccomp_release(context)


_MECHANISMS = {"mdwe": _set_mdwe, "seccomp": _install_seccomp_filter}


def _restrict_and_exec() -> None:
    """The wrapper (C{argv}: mechanism, program, arguments...): restrict, then exec."""
    mechanism, *argv = sys.argv[1:]
    try:
        _MECHANISMS[mechanism]()
    except OSError as e:
        print(f"unavailable: {e.strerror}", flush=True)
        sys.exit(UNAVAILABLE)
    os.execv(argv[0], argv)


def _write_execute_refused() -> bool:
    try:
        mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except PermissionError:
        return True
    return False


def _serve() -> None:
    """The server (C{argv}: what, state directory), run under the restriction.

    C{probe}: only say whether write+execute memory is refused.
    C{pistatsd}: pistatsd's L{tls_endpoint} on C{ssl:0}, serving a page.
    C{twisted} / C{twisted-alpn}: make the context of Twisted's own
    L{CertificateOptions} (without / with C{acceptableProtocols}), say whether
    that worked, and exit.
    """
    what, state_dir = sys.argv[1:]
    refused = _write_execute_refused()
    print(f"write+execute memory {'refused' if refused else 'allowed'}", flush=True)
    if what == "probe":
        return
    if what == "pistatsd":
        if not refused:
            sys.exit(NOT_RESTRICTED)
        _serve_pistatsd(state_dir)
        return
    from pistatsd.certificates import ensure_self_signed

    material = ensure_self_signed(state_dir)
    protocols = {"acceptableProtocols": [b"http/1.1"]} if what == "twisted-alpn" else {}
    try:
        CertificateOptions(
            privateKey=material.key,  # type: ignore[arg-type]
            certificate=material.certificate,  # type: ignore[arg-type]
            **protocols,  # type: ignore[arg-type]
        ).getContext()
    except MemoryError:
        print("context: MemoryError", flush=True)
    else:
        print("context: ok", flush=True)


def _serve_pistatsd(state_dir: str) -> None:
    from twisted.internet import reactor
    from twisted.web.server import Site
    from twisted.web.static import Data

    from pistatsd.config import Config
    from pistatsd.tls import tls_endpoint

    # A twisted.web Site, as in the daemon: it offers protocols to negotiate
    # (IProtocolNegotiationFactory), which some Twisted releases act on per
    # connection.
    page = Data(b"pong", "text/plain")
    page.isLeaf = True
    site = Site(page)
    endpoint = tls_endpoint(reactor, "ssl:0:interface=127.0.0.1", Config(state_dir=state_dir))
    listening = endpoint.listen(site)
    listening.addCallback(lambda port: print(f"listening on {port.getHost().port}", flush=True))
    reactor.run()  # type: ignore[attr-defined]


def _python(code: str, *args: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        f"from tests.integration.test_tls_mdwe import {code}; {code}()",
        *args,
    ]


def _restricted(mechanism: str, argv: list[str]) -> list[str]:
    return _python("_restrict_and_exec", mechanism, *argv)


@functools.cache
def _unavailable(mechanism: str) -> str | None:
    """Why C{mechanism} cannot restrict a process here, or None when it can."""
    probe = subprocess.run(
        _restricted(mechanism, _python("_serve", "probe", "-")),
        capture_output=True,
        text=True,
        cwd=PROJECT,
        check=False,
        timeout=60,
    )
    if probe.returncode == UNAVAILABLE:
        return probe.stdout.strip()
    assert "write+execute memory refused" in probe.stdout, probe.stdout + probe.stderr
    return None


def _require(mechanism: str) -> None:
    """Skip when C{mechanism} is unavailable; with C{PISTATSD_REQUIRE_REAL=1},
    fail instead if neither mechanism is."""
    reason = _unavailable(mechanism)
    if reason is None:
        return
    message = f"{mechanism}: {reason}"
    if os.environ.get("PISTATSD_REQUIRE_REAL") == "1" and all(map(_unavailable, _MECHANISMS)):
        pytest.fail(message + ", and no other way to refuse write+execute memory", pytrace=False)
    pytest.skip(message)


def _twisted_installs_alpn_callback() -> bool:
    """Whether Twisted sets an ALPN callback on contexts when not asked to (releases
    after 25.5 do), checked on a context class that records the call."""
    calls: list[object] = []

    class Recording(SSL.Context):
        def set_alpn_select_callback(self, callback: object) -> None:
            calls.append(callback)

    class Options(CertificateOptions):
        _contextFactory = Recording

    Options().getContext()
    return bool(calls)


class Server(Daemon):
    """One of L{_serve}'s servers, reusing the daemon helper's output handling."""

    def __init__(self, argv: list[str]) -> None:
        super().__init__()
        self.argv = argv
        self.cwd = PROJECT

    def run(self, timeout: float = 60.0) -> str:
        """Run to the end (for the servers that only make a context); the output."""
        result = subprocess.run(
            self.argv, capture_output=True, text=True, cwd=self.cwd, timeout=timeout, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout


def _get(port: int, cafile: str, version: ssl.TLSVersion) -> tuple[bytes, str | None, str | None]:
    """One HTTPS request offering ALPN: the body, the protocol chosen, the TLS version."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=cafile)
    context.minimum_version = context.maximum_version = version
    context.set_alpn_protocols(["h2", "http/1.1"])
    conn = http.client.HTTPSConnection("localhost", port, timeout=10, context=context)
    try:
        conn.request("GET", "/")
        body = conn.getresponse().read()
        assert isinstance(conn.sock, ssl.SSLSocket)
        return body, conn.sock.selected_alpn_protocol(), conn.sock.version()
    finally:
        conn.close()


@pytest.mark.parametrize("mechanism", sorted(_MECHANISMS))
def test_pistatsd_tls_handshakes_without_write_execute_memory(tmp_path, mechanism):
    _require(mechanism)
    server = Server(_restricted(mechanism, _python("_serve", "pistatsd", str(tmp_path))))
    server.proc = subprocess.Popen(
        server.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0, cwd=server.cwd
    )
    try:
        server.wait_for("write+execute memory refused")
        port = int(server.wait_for("listening on").split()[-1])
        cafile = str(tmp_path / "tls" / "cert.pem")
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3):
            # The client offers ALPN; the server has no callback to answer it.
            expected = (b"pong", None, version.name.replace("_", "."))
            assert _get(port, cafile, version) == expected
    except BaseException:
        server.stop()
        print(server.text())  # shown with the failure
        raise
    assert server.stop() == 0, server.text()
    assert "MemoryError" not in server.text() and "Traceback" not in server.text(), server.text()


@pytest.mark.parametrize("mechanism", sorted(_MECHANISMS))
def test_twisted_certificate_options_need_write_execute_memory(tmp_path, mechanism):
    """Why pistatsd's contexts install no ALPN callback (see C{pistatsd.tls._ServerContext})."""
    _require(mechanism)
    state = str(tmp_path)
    unrestricted = Server(_python("_serve", "twisted-alpn", state)).run()
    assert "context: ok" in unrestricted, unrestricted
    with_alpn = Server(_restricted(mechanism, _python("_serve", "twisted-alpn", state))).run()
    assert "context: MemoryError" in with_alpn, with_alpn
    # Without acceptableProtocols, Twisted up to 25.5 set no callback; later
    # releases set one anyway, and cannot make a context under the restriction.
    plain = Server(_restricted(mechanism, _python("_serve", "twisted", state))).run()
    expected = "MemoryError" if _twisted_installs_alpn_callback() else "ok"
    assert f"context: {expected}" in plain, plain
