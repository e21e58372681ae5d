"""The build's fetch-and-verify step (L{build_support.vendor}), in memory and on local files.

No network: every tarball is built here, with a pin made for it, and the
"registry" is a fake opener (or a loopback proxy that refuses connections).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import ssl
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import pytest

from build_support import vendor
from build_support.pins import UPLOT, Pin, PinnedFile
from build_support.vendor import VendorError, ensure
from tests.daemon import PROJECT, refused_port

CONTENTS = {
    "package/dist/lib.min.js": b"window.Lib = function () {};\n",
    "package/dist/lib.min.css": b".lib { color: red }\n",
    "package/LICENSE": b"MIT License\n",
}
URL = "https://registry.example/lib/-/lib-1.0.0.tgz"
ENV = "PISTATSD_UPLOT_TARBALL"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tgz(contents: Mapping[str, bytes], directories: tuple[str, ...] = ()) -> bytes:
    """A gzipped tarball like the npm registry's: every member under C{package/}."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in directories:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for name, data in contents.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def pin_for(data: bytes, contents: Mapping[str, bytes] = CONTENTS, **changes: object) -> Pin:
    """A pin that C{data} (a tarball of C{contents}) satisfies, unless C{changes} say otherwise."""
    fields: dict[str, object] = {
        "name": "Lib",
        "version": "1.0.0",
        "url": URL,
        "sha256": sha(data),
        "files": tuple(PinnedFile(member, sha(body)) for member, body in contents.items()),
        "subdir": "vendor/lib",
        "env": ENV,
    }
    fields.update(changes)
    return Pin(**fields)  # type: ignore[arg-type]


class FakeOpener:
    """The registry: records each request and answers with C{data} or raises C{error}."""

    def __init__(self, data: bytes = b"", error: Exception | None = None) -> None:
        self.data = data
        self.error = error
        self.calls: list[tuple[str, float]] = []

    def __call__(self, url: str, timeout: float) -> BinaryIO:
        self.calls.append((url, timeout))
        if self.error is not None:
            raise self.error
        return io.BytesIO(self.data)


def refuse(url: str, timeout: float) -> BinaryIO:
    raise AssertionError(f"unexpected download of {url}")


def files_in(dest: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(dest.iterdir())} if dest.exists() else {}


def expected_files() -> dict[str, bytes]:
    return {member.rsplit("/", 1)[-1]: body for member, body in sorted(CONTENTS.items())}


def one_line(e: pytest.ExceptionInfo[VendorError]) -> str:
    message = str(e.value)
    assert "\n" not in message
    return message


@pytest.fixture
def data() -> bytes:
    return tgz(CONTENTS)


@pytest.fixture
def local(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "lib-1.0.0.tgz"
    path.write_bytes(data)
    return path


def test_offline_tarball_installs_verified_files(tmp_path, data, local):
    """C{PISTATSD_UPLOT_TARBALL} is used instead of the network; files land 0644, no leftovers."""
    dest = tmp_path / "www" / "vendor" / "lib"
    done = ensure(str(dest), pin_for(data), environ={ENV: str(local)}, opener=refuse)
    assert done == f"installed Lib 1.0.0 in {dest} from {ENV}={local}"
    assert files_in(dest) == expected_files()
    assert {oct(p.stat().st_mode & 0o777) for p in dest.iterdir()} == {"0o644"}
    assert vendor.installed(str(dest), pin_for(data))


def test_download_without_offline_tarball(tmp_path, data):
    """No local copy named: one request for the pinned URL, with the timeout."""
    dest = tmp_path / "lib"
    opener = FakeOpener(data)
    done = ensure(str(dest), pin_for(data), environ={ENV: ""}, opener=opener)
    assert opener.calls == [(URL, vendor.TIMEOUT)]
    assert done.endswith(f"from {URL}")
    assert files_in(dest) == expected_files()


def test_present_files_are_not_fetched_again(tmp_path, data, local):
    dest = tmp_path / "lib"
    pin = pin_for(data)
    ensure(str(dest), pin, environ={ENV: str(local)})
    before = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}
    # Neither the network nor the (now missing) local copy is touched.
    local.unlink()
    done = ensure(str(dest), pin, environ={ENV: str(local)}, opener=refuse)
    assert done == f"Lib 1.0.0 already in {dest}"
    assert {p.name: p.stat().st_mtime_ns for p in dest.iterdir()} == before


def test_altered_file_is_replaced(tmp_path, data):
    dest = tmp_path / "lib"
    dest.mkdir()
    (dest / "lib.min.js").write_bytes(b"tampered")
    opener = FakeOpener(data)
    ensure(str(dest), pin_for(data), environ={}, opener=opener)
    assert len(opener.calls) == 1
    assert files_in(dest) == expected_files()


def test_wrong_tarball_sum_is_refused_and_nothing_written(tmp_path, data, local):
    dest = tmp_path / "lib"
    dest.mkdir()
    (dest / "lib.min.js").write_bytes(b"old")
    pin = pin_for(data, sha256="0" * 64)
    with pytest.raises(VendorError) as e:
        ensure(str(dest), pin, environ={ENV: str(local)})
    assert one_line(e) == (
        f"{ENV}={local} has SHA-256 {sha(data)}, expected {'0' * 64} (lib-1.0.0.tgz): "
        f"refusing it; point {ENV} at a genuine copy of {URL}"
    )
    assert files_in(dest) == {"lib.min.js": b"old"}


def test_wrong_download_sum_says_check_the_network(tmp_path, data):
    with pytest.raises(VendorError) as e:
        ensure(str(tmp_path / "lib"), pin_for(data, sha256="0" * 64), opener=FakeOpener(data))
    message = one_line(e)
    assert message.startswith(f"{URL} has SHA-256 {sha(data)}, expected {'0' * 64}")
    assert "check the network" in message and ENV in message
    assert not (tmp_path / "lib").exists()


def test_wrong_file_sum_is_refused_and_nothing_written(tmp_path, data, local):
    """Each extracted file is checked too, before any of them is written."""
    files = (
        PinnedFile("package/dist/lib.min.js", sha(CONTENTS["package/dist/lib.min.js"])),
        PinnedFile("package/LICENSE", "f" * 64),
    )
    with pytest.raises(VendorError) as e:
        ensure(str(tmp_path / "lib"), pin_for(data, files=files), environ={ENV: str(local)})
    assert one_line(e) == (
        f"package/LICENSE in {ENV}={local} has SHA-256 {sha(CONTENTS['package/LICENSE'])}, "
        f"expected {'f' * 64}: refusing it"
    )
    assert not (tmp_path / "lib").exists()


def test_missing_member_is_refused(tmp_path):
    partial = {k: v for k, v in CONTENTS.items() if k != "package/LICENSE"}
    data = tgz(partial)
    pin = pin_for(data, CONTENTS, sha256=sha(data))
    with pytest.raises(VendorError) as e:
        ensure(str(tmp_path / "lib"), pin, opener=FakeOpener(data))
    assert one_line(e) == f"{URL} has no package/LICENSE"
    assert not (tmp_path / "lib").exists()


def test_member_that_is_not_a_file_is_refused(tmp_path):
    data = tgz({}, directories=("package/LICENSE",))
    pin = pin_for(data, files=(PinnedFile("package/LICENSE", "0" * 64),))
    with pytest.raises(VendorError) as e:
        ensure(str(tmp_path / "lib"), pin, opener=FakeOpener(data))
    assert one_line(e) == f"{URL}: package/LICENSE is not a regular file"


def test_tarball_that_is_not_gzip_is_refused(tmp_path):
    data = b"<html>captive portal</html>"
    with pytest.raises(VendorError) as e:
        ensure(str(tmp_path / "lib"), pin_for(data, sha256=sha(data)), opener=FakeOpener(data))
    assert one_line(e).startswith(f"{URL} is not a readable .tgz (")


def test_missing_offline_tarball(tmp_path, data):
    missing = tmp_path / "nowhere.tgz"
    with pytest.raises(VendorError) as e:
        ensure(str(tmp_path / "lib"), pin_for(data), environ={ENV: str(missing)}, opener=refuse)
    assert one_line(e) == (
        f"{ENV}={missing}: cannot read it (No such file or directory); point it at a copy of {URL}"
    )


@pytest.mark.parametrize(
    "error, reason",
    [
        (urllib.error.URLError(OSError(-3, "Temporary failure in name resolution")), "name"),
        (urllib.error.HTTPError(URL, 404, "Not Found", {}, None), "404"),  # type: ignore[arg-type]
        (TimeoutError("timed out"), "timed out"),
    ],
)
def test_network_failure_says_what_to_do(tmp_path, data, error, reason):
    with pytest.raises(VendorError) as e:
        ensure(str(tmp_path / "lib"), pin_for(data), environ={}, opener=FakeOpener(error=error))
    message = one_line(e)
    assert message.startswith(f"cannot download Lib 1.0.0 from {URL} (")
    assert reason in message.lower()
    assert message.endswith(
        f"check the network, or build offline with {ENV}=/path/to/lib-1.0.0.tgz (a copy of {URL})"
    )
    assert not (tmp_path / "lib").exists()


def test_download_over_the_limit_is_refused(tmp_path):
    data = b"x" * 11
    opener = FakeOpener(data)
    with pytest.raises(VendorError) as e:
        ensure(str(tmp_path / "lib"), pin_for(data), opener=opener, limit=10)
    assert one_line(e) == f"{URL} is larger than 10 bytes: refusing it"
    # Exactly at the limit is read (and then judged by its sum).
    assert vendor.download(pin_for(data), opener=FakeOpener(data), limit=11) == data


def test_offline_tarball_over_the_limit_is_refused(tmp_path, data, local):
    limit = len(data) - 1
    with pytest.raises(VendorError) as e:
        ensure(str(tmp_path / "lib"), pin_for(data), environ={ENV: str(local)}, limit=limit)
    assert one_line(e) == f"{ENV}={local} is larger than {limit} bytes: refusing it"


def test_the_limit_allows_the_pinned_tarball():
    """uPlot 1.6.32's tarball is 160 KiB: the limit leaves room for upgrades, not for floods."""
    assert 1024 * 1024 <= vendor.MAX_TARBALL_BYTES <= 16 * 1024 * 1024


def test_only_https_is_fetched():
    with pytest.raises(VendorError) as e:
        vendor.https_open("http://registry.npmjs.org/uplot/-/uplot-1.6.32.tgz", 1.0)
    assert one_line(e).startswith("refusing to download http://")


def test_https_checks_certificate_and_host(monkeypatch):
    seen: dict[str, object] = {}

    def urlopen(request: urllib.request.Request, timeout: float, context: ssl.SSLContext):
        seen.update(url=request.full_url, timeout=timeout, context=context)
        return io.BytesIO(b"")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    vendor.https_open(UPLOT.url, 7.0)
    context = seen["context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert (seen["url"], seen["timeout"]) == (UPLOT.url, 7.0)


def test_unreachable_registry_fails_with_one_line(tmp_path):
    """The real urllib path, through a loopback proxy port where nothing listens."""
    with refused_port() as port:
        proxy = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if k.lower() not in {"no_proxy", ENV.lower()}}
        env.update(https_proxy=proxy, HTTPS_PROXY=proxy)
        dest = tmp_path / "uplot"
        result = subprocess.run(
            [sys.executable, "-m", "build_support.vendor", str(dest)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=PROJECT,
            env=env,
        )
        assert result.returncode == 1
        assert result.stdout == ""
        assert re.fullmatch(
            rf"fetch-assets: cannot download uPlot 1\.6\.32 from {re.escape(UPLOT.url)} \(.+\): "
            rf"check the network, or build offline with {ENV}=/path/to/uplot-1\.6\.32\.tgz "
            rf"\(a copy of {re.escape(UPLOT.url)}\)\n",
            result.stderr,
        ), result.stderr
        assert not dest.exists()


def test_command_line_check(tmp_path, capsys):
    dest = tmp_path / "uplot"
    assert vendor.main(["--check", str(dest)]) == 1
    assert capsys.readouterr().err == f"uPlot 1.6.32 missing or altered in {dest}\n"
    dest.mkdir()
    for pinned in UPLOT.files:
        (dest / pinned.name).write_bytes(b"not the pinned bytes")
    assert vendor.main(["--check", str(dest)]) == 1
    assert files_in(dest) == {f.name: b"not the pinned bytes" for f in UPLOT.files}


def test_command_line_failure_is_one_line(tmp_path, capsys):
    bad = tmp_path / "uplot-1.6.32.tgz"
    bad.write_bytes(tgz(CONTENTS))
    assert vendor.main([str(tmp_path / "uplot")], environ={ENV: str(bad)}) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"fetch-assets: {ENV}={bad} has SHA-256 ")
    assert err.endswith(f"refusing it; point {ENV} at a genuine copy of {UPLOT.url}\n")
    assert err.count("\n") == 1


def test_fetch_assets_script_wraps_the_same_code(tmp_path):
    """C{tools/fetch-assets.sh} is a thin wrapper: same checks, same messages, no npm."""
    script = os.path.join(PROJECT, "tools", "fetch-assets.sh")
    assert "npm " not in Path(script).read_text()
    result = subprocess.run(
        ["sh", script, "--check", str(tmp_path / "uplot")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr == f"uPlot 1.6.32 missing or altered in {tmp_path / 'uplot'}\n"


def test_uplot_pin_matches_the_dashboard():
    """The pinned files are the ones C{www/index.html} loads, from the registry over HTTPS."""
    assert UPLOT.url == "https://registry.npmjs.org/uplot/-/uplot-1.6.32.tgz"
    assert UPLOT.tarball == f"uplot-{UPLOT.version}.tgz"
    assert UPLOT.env == ENV
    assert all(
        re.fullmatch("[0-9a-f]{64}", s) for s in [UPLOT.sha256, *(f.sha256 for f in UPLOT.files)]
    )
    assert {f.name for f in UPLOT.files} == {"uPlot.iife.min.js", "uPlot.min.css", "LICENSE"}
    index = Path(PROJECT, "www", "index.html").read_text()
    for name in ("uPlot.iife.min.js", "uPlot.min.css"):
        assert f'"{UPLOT.subdir}/{name}"' in index
    assert vendor.default_dest() == os.path.join(PROJECT, "www", "vendor", "uplot")
