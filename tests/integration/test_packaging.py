"""Builds and installs from a clean copy of the checkout carry the pinned charting library.

Each build starts from what a fresh clone holds (C{git ls-files}, plus files
not committed yet): no C{www/vendor/}, no venv, no Node.js or npm needed.
These tests need PyPI (pip's isolated build environment, the dependencies)
and the npm registry: the uPlot tarball is downloaded once per session and
handed to the builds through C{PISTATSD_UPLOT_TARBALL}, except in the
bootstrap test, where the build step fetches it itself as on a user's
machine.  Set C{PISTATSD_UPLOT_TARBALL} for the whole run to need no npm
registry at all.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from build_support import vendor
from build_support.pins import UPLOT
from tests.daemon import LOOPBACK, PROJECT, Daemon

pytestmark = pytest.mark.network

ENV = UPLOT.env
#: Where the files are in a wheel and in an installed package.
WHEEL_DIR = "pistatsd/www/" + UPLOT.subdir
#: What the npm client brings: hidden from PATH to show that nothing needs it.
NODE_PROGRAMS = {"node", "nodejs", "npm", "npx", "corepack"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run(args: list[str], *, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run to completion and capture; the caller judges the outcome.

    Outside the checkout by default: a C{build/} directory left there by an
    earlier setuptools build would shadow the C{build} package for C{python -m build}.
    """
    kwargs.setdefault("cwd", tempfile.gettempdir())
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)


def succeed(args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    result = run(args, **kwargs)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def build_env(tarball: Path | str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if tarball is not None:
        env[ENV] = str(tarball)
    return env


def clean_checkout(dest: Path) -> Path:
    """Copy what a fresh clone of the project holds (and new files not committed yet)."""
    git = shutil.which("git")
    if git is None or not os.path.exists(os.path.join(PROJECT, ".git")):
        pytest.skip("not a git checkout: cannot tell the project's files from build leftovers")
    listed = subprocess.run(
        [git, "-C", PROJECT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    for name in filter(None, listed.split(b"\0")):
        source = os.path.join(PROJECT, os.fsdecode(name))
        if os.path.isfile(source):  # listed but deleted in the work tree: skip it
            target = dest / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    assert (dest / "setup.py").is_file() and (dest / "build_support" / "vendor.py").is_file()
    assert not (dest / "www" / "vendor").exists(), "www/vendor/ must not be a file of the project"
    return dest


def assert_uplot_in_wheel(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        for pinned in UPLOT.files:
            assert sha(z.read(f"{WHEEL_DIR}/{pinned.name}")) == pinned.sha256, pinned.name


@pytest.fixture(scope="session")
def uplot_tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """uplot-1.6.32.tgz, downloaded once per session (or taken from C{PISTATSD_UPLOT_TARBALL})."""
    path = tmp_path_factory.mktemp("uplot") / UPLOT.tarball
    local = os.environ.get(ENV)
    try:
        data = vendor.read_local(local) if local else vendor.download()
        vendor.extract(data, UPLOT, local or UPLOT.url)  # verifies every sum
    except vendor.VendorError as e:
        pytest.fail(f"{e} (offline: deselect with -m 'not network')", pytrace=False)
    path.write_bytes(data)
    return path


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory, uplot_tarball: Path) -> Path:
    """A wheel built by pip from a clean copy of the checkout."""
    source = clean_checkout(tmp_path_factory.mktemp("checkout"))
    out = tmp_path_factory.mktemp("wheel")
    succeed(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
        env=build_env(uplot_tarball),
    )
    # A regular build writes into its build directory, never into the checkout's www/.
    assert not (source / "www" / "vendor").exists()
    (built,) = out.glob("pistatsd-*.whl")
    return built


def test_wheel_from_clean_checkout_has_uplot(wheel):
    assert_uplot_in_wheel(wheel)
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert "pistatsd/www/index.html" in names
    # The build hook is for building only, it is not installed.
    assert not [n for n in names if n.startswith("build_support/") or n == "setup.py"]


def test_sdist_carries_the_hook_not_the_library(tmp_path, uplot_tarball):
    """The sdist has the hook and no uPlot; a wheel built from it fetches (and verifies) uPlot."""
    source = clean_checkout(tmp_path / "checkout")
    # Even with the files present in the checkout, they stay out of the sdist.
    vendor.ensure(str(source / "www" / UPLOT.subdir), environ={ENV: str(uplot_tarball)})
    succeed(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path / "dist"), str(source)],
        env=build_env(None),
    )
    (sdist,) = (tmp_path / "dist").glob("pistatsd-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"setup.py", "MANIFEST.in", "build_support/pins.py", "build_support/vendor.py"} <= names
    assert "build_support/commands.py" in names
    assert not [n for n in names if n.startswith("www/vendor")], names
    succeed(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(sdist)],
        env=build_env(uplot_tarball),
    )
    (built,) = tmp_path.glob("pistatsd-*.whl")
    assert_uplot_in_wheel(built)


def test_build_without_the_library_fails_with_one_clear_line(tmp_path):
    """No verified uPlot, no wheel: charts are part of the product."""
    source = clean_checkout(tmp_path / "checkout")
    bad = tmp_path / UPLOT.tarball
    bad.write_bytes(b"not the tarball")
    result = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(source)],
        env=build_env(bad),
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    lines = [line.strip() for line in output.splitlines() if f"{ENV}={bad}" in line]
    assert lines == [
        f"error: {ENV}={bad} has SHA-256 {sha(b'not the tarball')}, expected {UPLOT.sha256} "
        f"({UPLOT.tarball}): refusing it; point {ENV} at a genuine copy of {UPLOT.url}"
    ], output
    assert not list(tmp_path.glob("*.whl"))


def test_editable_install_without_the_library_fails(tmp_path):
    """setuptools turns a failing custom build_py into a warning in editable installs: the
    hook is a build sub-command of its own, so here too the install fails."""
    source = clean_checkout(tmp_path / "checkout")
    venv = tmp_path / "venv"
    succeed([sys.executable, "-m", "venv", str(venv)], timeout=120)
    result = run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-e",
            str(source),
            "--config-settings",
            "editable_mode=compat",
        ],
        env=build_env(tmp_path / "missing.tgz"),
    )
    assert result.returncode != 0
    missing = tmp_path / "missing.tgz"
    assert f"error: {ENV}={missing}: cannot read it" in result.stdout + result.stderr
    assert not (source / "www" / "vendor" / "uplot").exists()
    assert run([str(venv / "bin" / "python"), "-c", "import pistatsd"]).returncode != 0


def test_installed_wheel_serves_uplot(tmp_path, wheel):
    """A plain install into a fresh venv serves the charting library with the dashboard."""
    venv = tmp_path / "venv"
    succeed([sys.executable, "-m", "venv", str(venv)], timeout=120)
    succeed([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], timeout=600)
    daemon = Daemon(["--state-dir", str(tmp_path / "state")], cwd=str(tmp_path))
    daemon.argv[0] = str(venv / "bin" / "pistatsd")  # the installed command
    with running(daemon):
        for pinned in UPLOT.files:
            status, _, body = daemon.get(f"/{UPLOT.subdir}/{pinned.name}")
            assert (status, sha(body)) == (200, pinned.sha256), pinned.name
        assert b"vendor/uplot/uPlot.iife.min.js" in daemon.get("/index.html")[2]


@contextmanager
def running(daemon: Daemon, timeout: float = 60.0) -> Iterator[Daemon]:
    """Run C{daemon} for a C{with} block; it must stop cleanly."""
    try:
        daemon.start(timeout=timeout)
    except BaseException:
        if daemon.proc is not None:
            daemon.stop()
        raise
    try:
        yield daemon
    finally:
        status = daemon.stop()
    assert status == 0, daemon.text()


@pytest.fixture
def path_without_node(tmp_path: Path) -> Iterator[str]:
    """A PATH with every program of ours except Node.js and npm (symlinks, first one wins)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            program = os.path.join(directory, name)
            link = bin_dir / name
            if name in NODE_PROGRAMS or link.exists() or link.is_symlink():
                continue
            if os.path.isfile(program) and os.access(program, os.X_OK):
                link.symlink_to(program)
    path = str(bin_dir)
    assert all(shutil.which(p, path=path) is None for p in NODE_PROGRAMS)
    assert shutil.which("sh", path=path) and shutil.which("python3", path=path)
    yield path


def test_run_and_test_setup_need_no_node_or_npm(tmp_path, path_without_node):
    """The README's commands on a machine without Node.js: bootstrap, then C{tools/run.sh}.

    Here the build step downloads uPlot itself, as on a user's machine
    (unless C{PISTATSD_UPLOT_TARBALL} is set for the whole run).  A second
    bootstrap with nothing changed installs nothing; a missing library file
    or a changed C{pyproject.toml} makes it install again.
    """
    source = clean_checkout(tmp_path / "checkout")
    venv = tmp_path / "venv"
    env = dict(build_env(os.environ.get(ENV)), PATH=path_without_node, PISTATSD_VENV=str(venv))
    env.pop("VIRTUAL_ENV", None)
    # The test setup (--system) installs Debian packages that are missing: only when none are.
    system = all(shutil.which(p, path=path_without_node) for p in ("influxd", "nginx", "chromium"))
    bootstrap = ["sh", "tools/bootstrap.sh", *(["--system"] if system else [])]
    first = succeed(bootstrap, cwd=source, env=env, timeout=600)
    assert "already installed" not in first.stdout
    library = source / "www" / UPLOT.subdir
    assert vendor.installed(str(library))
    assert (venv / ".pistatsd-install").is_file()

    began = time.monotonic()
    again = succeed(bootstrap, cwd=source, env=env, timeout=120)
    assert again.stdout.strip().endswith(f"pistatsd already installed in {venv}"), again.stdout
    assert time.monotonic() - began < 30

    (library / "uPlot.min.css").unlink()
    repaired = succeed(["sh", "tools/bootstrap.sh"], cwd=source, env=env, timeout=600)
    assert "already installed" not in repaired.stdout
    assert vendor.installed(str(library))

    with open(source / "pyproject.toml", "a") as f:
        f.write("\n# changed\n")
    changed = succeed(["sh", "tools/bootstrap.sh"], cwd=source, env=env, timeout=600)
    assert "already installed" not in changed.stdout

    state = tmp_path / "state"
    daemon = Daemon(cwd=str(source), env={"PATH": path_without_node, "PISTATSD_VENV": str(venv)})
    daemon.argv = [
        "sh",
        "tools/run.sh",
        "--port",
        LOOPBACK,
        "--heartbeat",
        "0",
        "--state-dir",
        str(state),
    ]
    with running(daemon):
        status, _, body = daemon.get(f"/{UPLOT.subdir}/uPlot.iife.min.js")
        assert (status, sha(body)) == (200, UPLOT.files[0].sha256)
