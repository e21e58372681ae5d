"""Fetch a pinned library's tarball, verify every byte, install its files.

Standard library only: this runs inside pip's isolated build environment,
where nothing but setuptools is installed, and on machines that have Python
but no Node.js or npm.  The tarball comes from the npm registry over verified
HTTPS, or from a local copy named by the pin's environment variable
(C{PISTATSD_UPLOT_TARBALL}) for offline builds; either way it must match the
pinned SHA-256, and so must each file taken from it, before anything is
written.  Files already in place with the right sums are left alone, so a
rebuild does not touch the network.

Also a command line for checkouts (C{tools/fetch-assets.sh} calls it)::

    python3 -m build_support.vendor [--check] [DEST]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import os
import ssl
import sys
import tarfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from typing import BinaryIO, Protocol

from build_support.pins import UPLOT, Pin

#: Seconds that one network operation (connecting, each read) may block.
TIMEOUT = 60.0
#: The largest tarball accepted (uPlot 1.6.32 is 160 KiB): a wrong URL or a
#: proxy's error page cannot fill the memory of the build.
MAX_TARBALL_BYTES = 8 * 1024 * 1024
#: How much is read at a time, so the size limit holds while reading.
_CHUNK = 64 * 1024
#: The project root: the default destination is its C{www/} folder.
_PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Opener(Protocol):
    """Opens a URL for reading, like C{urllib.request.urlopen} (tests pass a fake)."""

    def __call__(self, url: str, timeout: float) -> BinaryIO: ...


class VendorError(Exception):
    """A pinned library could not be installed; the message is one line saying what to do."""


def sha256(data: bytes) -> str:
    """The hex SHA-256 of C{data}, the form the pins are recorded in."""
    return hashlib.sha256(data).hexdigest()


def default_dest(pin: Pin = UPLOT) -> str:
    """Where a checkout keeps the files: C{www/<subdir>} (gitignored), served as C{/<subdir>}."""
    return os.path.join(_PROJECT, "www", *pin.subdir.split("/"))


def installed(dest: str, pin: Pin = UPLOT) -> bool:
    """Whether every file of C{pin} is in C{dest} with its pinned sum."""
    for pinned in pin.files:
        try:
            with open(os.path.join(dest, pinned.name), "rb") as f:
                if sha256(f.read()) != pinned.sha256:
                    return False
        except OSError:
            return False
    return True


def https_open(url: str, timeout: float) -> BinaryIO:
    """Open C{url} over HTTPS with the system's CA certificates and hostname checks."""
    if not url.startswith("https://"):
        raise VendorError(f"refusing to download {url}: only https:// URLs are fetched")
    request = urllib.request.Request(url, headers={"User-Agent": "pistatsd-build"})
    context = ssl.create_default_context()
    return urllib.request.urlopen(request, timeout=timeout, context=context)


def _read_limited(stream: BinaryIO, limit: int, source: str) -> bytes:
    """All of C{stream}, refusing (before reading further) anything over C{limit} bytes."""
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > limit:
            raise VendorError(f"{source} is larger than {limit} bytes: refusing it")
        parts.append(chunk)


def _offline_hint(pin: Pin) -> str:
    return f"{pin.env}=/path/to/{pin.tarball} (a copy of {pin.url})"


def download(
    pin: Pin = UPLOT,
    *,
    opener: Opener = https_open,
    timeout: float = TIMEOUT,
    limit: int = MAX_TARBALL_BYTES,
) -> bytes:
    """The tarball's bytes from C{pin.url} (not yet verified)."""
    try:
        with opener(pin.url, timeout) as response:
            return _read_limited(response, limit, pin.url)
    except (OSError, ValueError, http.client.HTTPException) as e:
        if isinstance(e, urllib.error.HTTPError):
            reason: object = f"HTTP {e.code} {e.reason}"
        else:
            reason = getattr(e, "reason", None) or e
        reason = " ".join(str(reason).split())  # one line, whatever the error says
        raise VendorError(
            f"cannot download {pin.name} {pin.version} from {pin.url} ({reason}): "
            f"check the network, or build offline with {_offline_hint(pin)}"
        ) from e


def read_local(path: str, pin: Pin = UPLOT, *, limit: int = MAX_TARBALL_BYTES) -> bytes:
    """The bytes of a local copy of the tarball (not yet verified)."""
    source = f"{pin.env}={path}"
    try:
        with open(path, "rb") as f:
            return _read_limited(f, limit, source)
    except OSError as e:
        raise VendorError(
            f"{source}: cannot read it ({e.strerror or e}); point it at a copy of {pin.url}"
        ) from e


def extract(data: bytes, pin: Pin, source: str) -> dict[str, bytes]:
    """The pinned files of the tarball C{data} by installed name, every sum checked.

    The tarball's own sum is checked first, so nothing else is even parsed
    from a tarball that is not the reviewed one.  Members are read into
    memory, never extracted to disk, so no path in the archive can write
    outside the destination.
    """
    got = sha256(data)
    if got != pin.sha256:
        if source == pin.url:
            what_to_do = f"check the network (a proxy may alter downloads), or use {pin.env}"
        else:
            what_to_do = f"point {pin.env} at a genuine copy of {pin.url}"
        raise VendorError(
            f"{source} has SHA-256 {got}, expected {pin.sha256} ({pin.tarball}): "
            f"refusing it; {what_to_do}"
        )
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            files: dict[str, bytes] = {}
            for pinned in pin.files:
                try:
                    member = tar.getmember(pinned.member)
                except KeyError:
                    raise VendorError(f"{source} has no {pinned.member}") from None
                stream = tar.extractfile(member) if member.isfile() else None
                if stream is None:
                    raise VendorError(f"{source}: {pinned.member} is not a regular file")
                content = stream.read()
                if sha256(content) != pinned.sha256:
                    raise VendorError(
                        f"{pinned.member} in {source} has SHA-256 {sha256(content)}, "
                        f"expected {pinned.sha256}: refusing it"
                    )
                files[pinned.name] = content
            return files
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise VendorError(f"{source} is not a readable .tgz ({e})") from e


def write_files(dest: str, files: Mapping[str, bytes]) -> None:
    """Write each file atomically (dot-prefixed temporary name: never served), mode 0644."""
    os.makedirs(dest, exist_ok=True)
    for name, content in files.items():
        temporary = os.path.join(dest, f".{name}.tmp")
        with open(temporary, "wb") as f:
            f.write(content)
        os.chmod(temporary, 0o644)
        os.replace(temporary, os.path.join(dest, name))


def ensure(
    dest: str,
    pin: Pin = UPLOT,
    *,
    environ: Mapping[str, str] = os.environ,
    opener: Opener = https_open,
    timeout: float = TIMEOUT,
    limit: int = MAX_TARBALL_BYTES,
) -> str:
    """Make C{dest} hold C{pin}'s files; returns one line saying what was done.

    Raises L{VendorError} (and writes nothing) when the tarball cannot be had
    or does not verify.
    """
    if installed(dest, pin):
        return f"{pin.name} {pin.version} already in {dest}"
    local = environ.get(pin.env, "")
    if local:
        source = f"{pin.env}={local}"
        data = read_local(local, pin, limit=limit)
    else:
        source = pin.url
        data = download(pin, opener=opener, timeout=timeout, limit=limit)
    write_files(dest, extract(data, pin, source))
    if not installed(dest, pin):
        raise VendorError(f"{pin.name} {pin.version} written to {dest} does not verify")
    return f"installed {pin.name} {pin.version} in {dest} from {source}"


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    """Install (or with C{--check} only verify) uPlot in a checkout; 0 on success."""
    parser = argparse.ArgumentParser(
        prog="python3 -m build_support.vendor",
        description=f"Install {UPLOT.name} {UPLOT.version}, pinned and verified.",
    )
    parser.add_argument("dest", nargs="?", default=default_dest(), help="default: %(default)s")
    parser.add_argument(
        "--check", action="store_true", help="only verify the installed files; fetch nothing"
    )
    args = parser.parse_args(argv)
    if args.check:
        if installed(args.dest):
            print(f"{UPLOT.name} {UPLOT.version} verified in {args.dest}")
            return 0
        print(f"{UPLOT.name} {UPLOT.version} missing or altered in {args.dest}", file=sys.stderr)
        return 1
    try:
        print(ensure(args.dest, environ=environ))
    except VendorError as e:
        print(f"fetch-assets: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
