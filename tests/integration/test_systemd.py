"""systemd for real: the sd_notify helper on local sockets, then the
shipped units run.

The real-plugin tests run the unit's own C{ExecStart=} command line (ports
moved to loopback, C{%S} to a temp dir) with a notify socket of our own, pass
it a listening socket the way systemd's socket activation does, and run it
under the kernel's C{PR_SET_MDWE}, which is what C{MemoryDenyWriteExecute=yes}
sets.  C{systemd-analyze verify} checks the unit files where it is installed."""

from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid

import pytest
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.systemd import (
    Notifier,
    notify_address,
)
from tests.daemon import LAUNCHER, TWISTD, Daemon
from tests.real import missing, require_program
from tests.systemd_units import SERVICE, SOCKET, unit


def short_dir(case: SynchronousTestCase | None = None) -> str:
    """A directory with a short path: AF_UNIX socket paths are limited to 108 bytes."""
    path = tempfile.mkdtemp(prefix="pistatsd-", dir="/tmp")
    if case is not None:
        case.addCleanup(shutil.rmtree, path, True)
    return path


def receiver(address: str) -> socket.socket:
    """A bound datagram socket, like systemd's notify socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    return sock


class NotifierTests(SynchronousTestCase):
    def test_path_socket(self):
        path = os.path.join(short_dir(self), "notify")
        with receiver(path) as sock:
            self.assertTrue(Notifier(path).send("READY=1\nSTATUS=ok"))
            self.assertEqual(sock.recv(4096), b"READY=1\nSTATUS=ok")

    def test_abstract_socket(self):
        name = f"@pistatsd-test-{uuid.uuid4().hex}"
        with receiver(notify_address(name)) as sock:
            self.assertTrue(Notifier(notify_address(name)).send("WATCHDOG=1"))
            self.assertEqual(sock.recv(4096), b"WATCHDOG=1")

    def test_failures_are_logged_once_per_episode_and_never_raised(self):
        path = os.path.join(short_dir(self), "notify")
        notifier = Notifier(path)
        with capturedLogs() as events:
            self.assertFalse(notifier.send("WATCHDOG=1"))
            self.assertFalse(notifier.send("WATCHDOG=1"))
            with receiver(path):
                self.assertTrue(notifier.send("WATCHDOG=1"))
            os.unlink(path)
            self.assertFalse(notifier.send("WATCHDOG=1"))
        formats = [e["log_format"] for e in events]
        self.assertEqual(
            formats,
            [
                "systemd notification to {address} failed: {error}",
                "systemd notifications to {address} work again ({failures} failed in all)",
                "systemd notification to {address} failed: {error}",
            ],
        )
        self.assertEqual(notifier.failures, 3)

    def test_never_blocks_on_a_full_socket(self):
        """systemd not reading: sends fail fast instead of stalling the reactor."""
        path = os.path.join(short_dir(self), "notify")
        notifier = Notifier(path)
        with receiver(path):
            started = time.monotonic()
            results = [notifier.send("WATCHDOG=1") for _ in range(2000)]
            self.assertLess(time.monotonic() - started, 5)
        self.assertTrue(results[0])
        self.assertIn(False, results)


@pytest.mark.real
def test_systemd_analyze_verify(tmp_path):
    analyze = require_program("systemd-analyze")
    # verify checks that ExecStart's program exists: point it at this venv's.
    with open(SERVICE) as f:
        text = f.read().replace("/opt/pistatsd/bin/pistatsd", LAUNCHER)
    (tmp_path / "pistatsd.service").write_text(text)
    shutil.copy(SOCKET, tmp_path / "pistatsd.socket")
    result = subprocess.run(
        [analyze, "verify", "--man=no", "pistatsd.service", "pistatsd.socket"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(tmp_path),
    )
    complaints = [
        line for line in (result.stdout + result.stderr).splitlines() if "pistatsd." in line
    ]
    assert result.returncode == 0, result.stdout + result.stderr
    assert complaints == []


def shipped_command(state_dir: str, port: int) -> list[str]:
    """The unit's ExecStart=, as systemd would run it, with loopback ports and temp dirs."""
    service = unit(SERVICE)["Service"]
    environment = dict(
        shlex.split(value)[0].split("=", 1) for value in service.get("Environment", [])
    )
    opts = environment["PISTATSD_OPTS"].replace("tcp:8888", f"tcp:{port}:interface=127.0.0.1")
    argv: list[str] = []
    for word in shlex.split(service["ExecStart"][-1]):
        if word == "$PISTATSD_OPTS":
            argv += opts.split()
        else:
            word = word.replace("/opt/pistatsd/bin/pistatsd", LAUNCHER)
            argv.append(word.replace("%S", state_dir))
    assert argv[0] == LAUNCHER, argv
    return [*argv, "--heartbeat", "0"]


class Datagrams:
    """Reads notifications from our stand-in for systemd's notify socket."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = receiver(path)
        self.received: list[str] = []

    def wait_for(self, prefix: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {prefix!r} within {timeout}s; got {self.received}")
            self.sock.settimeout(remaining)
            try:
                message = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            self.received.append(message)
            if message.startswith(prefix):
                return message

    def close(self) -> None:
        self.sock.close()


def test_notify_ready_watchdog_and_stopping_with_the_shipped_command(tmp_path):
    directory = short_dir()
    notify = Datagrams(os.path.join(directory, "notify"))
    d = Daemon(env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000"})
    d.argv = shipped_command(str(tmp_path), 0)
    try:
        d.proc = subprocess.Popen(
            d.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0, env=d.env
        )
        ready = notify.wait_for("READY=1")
        # Ready means listening: the port (logged when bound, before) answers at once.
        d.port = d.bound_port()
        assert d.get("/alive")[2] == b"Alive"
        assert f"MAINPID={d.proc.pid}" in ready.split("\n")
        assert any(line.startswith("STATUS=") for line in ready.split("\n"))
        for _ in range(2):
            notify.wait_for("WATCHDOG=1", timeout=5)
        d.proc.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1", timeout=10)
        assert d.proc.wait(timeout=10) == 0
        d.stop()
        assert "Traceback" not in d.text()
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
        notify.close()
        shutil.rmtree(directory, True)


#: What systemd does for a socket unit: the socket becomes fd 3
#: (SD_LISTEN_FDS_START), and LISTEN_PID names the process that execs.
SOCKET_ACTIVATION_WRAPPER = """\
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1", LISTEN_FDNAMES="pistatsd.socket")
os.execv(sys.argv[2], sys.argv[2:])
"""


def test_socket_activation(tmp_path):
    """systemd's way: the socket arrives as fd 3, with LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    argv = [
        sys.executable,
        "-c",
        SOCKET_ACTIVATION_WRAPPER,
        str(listener.fileno()),
        TWISTD,
        "-n",
        "--pidfile=",
        "pistatsd",
        "--port",
        "systemd:domain=INET:index=0",
        "--heartbeat",
        "0",
        "--state-dir",
        str(tmp_path),
    ]
    d = Daemon(port=port)
    d.argv = argv
    env = {k: v for k, v in d.env.items() if not k.startswith("LISTEN_")}
    try:
        d.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            bufsize=0,
            env=env,
            pass_fds=(listener.fileno(),),
        )
        listener.close()  # only the daemon holds it now
        d.wait_for("ready: listening on systemd:domain=INET:index=0")
        assert d.get("/sum?a=1&b=2")[2] == b"Sum: 3"
        assert d.get("/alive")[2] == b"Alive"
        assert d.stop() == 0
    finally:
        listener.close()
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


#: Turns on the kernel's "memory deny write-execute" (Linux >= 6.3), what
#: systemd's MemoryDenyWriteExecute=yes does, checks it bites, then execs.
MDWE_WRAPPER = """\
import ctypes, mmap, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    print("MDWE unsupported", flush=True)
    sys.exit(3)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except PermissionError:
    print("MDWE on: write+execute memory refused", flush=True)
else:
    print("MDWE off", flush=True)
    sys.exit(4)
os.execv(sys.argv[1], sys.argv[1:])
"""


def test_survives_memory_deny_write_execute(tmp_path):
    probe = subprocess.run(
        [sys.executable, "-c", MDWE_WRAPPER, "/bin/true"], capture_output=True, text=True
    )
    if probe.returncode == 3:
        missing("this kernel has no PR_SET_MDWE (Linux >= 6.3)")
    assert probe.returncode == 0, probe.stdout + probe.stderr
    d = Daemon(["--tls", "ssl:0:interface=127.0.0.1", "--state-dir", str(tmp_path)])
    d.argv = [sys.executable, "-c", MDWE_WRAPPER, *d.argv]
    d.start()
    tls_port = d.bound_port("tls")
    try:
        assert "MDWE on" in d.text()
        context = ssl.create_default_context(cafile=str(tmp_path / "tls" / "cert.pem"))
        for _ in range(3):
            conn = http.client.HTTPSConnection("localhost", tls_port, timeout=10, context=context)
            conn.request("GET", "/sum?a=1&b=2")
            assert conn.getresponse().read() == b"Sum: 3"
            conn.close()
        assert d.get("/stats")[0] == 200
        assert re.search(r"MemoryError|Traceback", d.text()) is None
    finally:
        assert d.stop() == 0


# -- what the unit's /proc settings let a dynamic user see ---------------------------------

#: How systemd mounts the unit's /proc (systemd.exec(5)): ProtectProc= is procfs's
#: hidepid= option, ProcSubset=pid its subset=pid.
HIDEPID = {"default": None, "invisible": "invisible", "ptraceable": "ptraceable",
           "noaccess": "noaccess"}  # fmt: skip


def _scan_as_a_dynamic_user(protect_proc: str, proc_subset: str) -> dict[str, object]:
    """The process scan of pistatsd run as an unprivileged user (as DynamicUser= makes),
    in a mount namespace whose /proc is mounted the way those two settings mount it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a procfs needs root")
    unshare, setpriv = shutil.which("unshare"), shutil.which("setpriv")
    if unshare is None or setpriv is None:
        pytest.skip("unshare and setpriv (util-linux) are needed")
    options = [f"hidepid={HIDEPID[protect_proc]}"] if HIDEPID[protect_proc] else []
    if proc_subset == "pid":
        options.append("subset=pid")
    probe = (
        "import json, os; from pistatsd.machine.processes import ProcessScanner; "
        "s = ProcessScanner().scan(); "
        "print(json.dumps({'total': s['total'], 'pid1': os.path.exists('/proc/1/stat'), "
        "'meminfo': os.path.exists('/proc/meminfo')}))"
    )
    script = (
        f"mount -t proc -o {','.join(options) or 'defaults'} proc /proc && "
        f"exec {setpriv} --reuid=61234 --regid=61234 --clear-groups "
        f"{shlex.quote(sys.executable)} -c {shlex.quote(probe)}"
    )
    result = subprocess.run(
        [unshare, "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_units_proc_shows_a_dynamic_user_every_process():
    service = unit(SERVICE)["Service"]
    seen = _scan_as_a_dynamic_user(
        service.get("ProtectProc", ["default"])[-1], service.get("ProcSubset", ["all"])[-1]
    )
    assert seen["pid1"], seen  # root's init: another user's process
    assert seen["total"] > 2, seen
    assert seen["meminfo"], seen  # psutil's system-wide files
    # The setting this replaces would have shown the scan its own process only.
    assert _scan_as_a_dynamic_user("invisible", "all")["total"] == 1
