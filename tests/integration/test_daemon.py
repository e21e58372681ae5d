"""The real plugin, started with twistd, over loopback: start-up, serving, failures, shutdown."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from tests.daemon import LOOPBACK, PROJECT, Daemon, bound_ports, run_twistd


def test_plugin_is_listed():
    result = run_twistd(["--help"])
    assert result.returncode == 0
    assert "pistatsd" in result.stdout


def test_serves_every_resource(daemon):
    d = daemon()
    status, headers, body = d.get("/")
    assert (status, body) == (200, b"Alive")
    status, headers, body = d.get("/", {"Accept": "text/html"})
    assert status == 200 and b"<html" in body
    assert headers["Vary"] == "Accept"
    assert d.get("/sum?a=3&b=3&c=x&d=inf")[2] == b"Sum: 6"
    status, _, body = d.get(
        "/sum", {"Content-Type": "application/json"}, "POST", b'{"a": 3, "b": 4.5}'
    )
    assert (status, body) == (200, b"Sum: 7.5")
    stats = json.loads(d.get("/stats")[2])
    assert {"timestamp", "hostname", "cpu", "memory", "temperature", "uptime"} <= set(stats)
    assert json.loads(d.get("/stats/memory")[2])["memory"]["total"] > 0
    assert json.loads(d.get("/health")[2])["status"] == "ok"
    assert json.loads(d.get("/api?x=1")[2])["args"] == {"x": ["1"]}
    assert b"You requested /a.zzz" in d.get("/a.zzz")[2]
    assert d.get("/no-such-file")[0] == 404


def test_interval_measures_over_the_window(daemon):
    d = daemon()
    started = time.monotonic()
    status, _, body = d.get("/stats?interval=0.3")
    elapsed = time.monotonic() - started
    assert status == 200
    assert json.loads(body)["cpu"]["interval"] == pytest.approx(0.3, abs=0.05)
    assert 0.28 <= elapsed < 2.0


def test_many_concurrent_interval_requests_finish_together(daemon):
    """200 concurrent ?interval=0.5 requests: all answered in about half a second."""
    d = daemon()
    conns = []
    for _ in range(200):
        conn = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        conns.append(conn)
    started = time.monotonic()
    for conn in conns:
        conn.sendall(
            b"GET /stats?interval=0.5 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
    for conn in conns:
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        assert data.startswith(b"HTTP/1.1 200")
        conn.close()
    assert time.monotonic() - started < 1.5


def test_unix_and_tcp_together(daemon, tmp_path):
    path = str(tmp_path / "p.sock")
    d = daemon("--port", f"unix:{path}")
    assert d.get("/alive")[2] == b"Alive"
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    s.sendall(b"GET /alive HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"Alive")


def test_config_file(daemon, tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    (www / "hello.txt").write_text("from the toml www")
    config = tmp_path / "p.toml"
    config.write_text(f'www = "{www}"\nmax-body = 10\n')
    d = daemon("--config", str(config))
    assert d.get("/hello.txt")[2] == b"from the toml www"
    status, _, _ = d.get("/sum", {"Content-Type": "application/json"}, "POST", b"x" * 11)
    assert status == 413


def test_sigterm_exits_cleanly(daemon):
    d = daemon()
    keepalive = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    keepalive.request("GET", "/alive")
    keepalive.getresponse().read()
    started = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - started < 10
    assert "Traceback" not in d.text()
    assert "Server Shut Down" in d.text()


def test_access_log(daemon, tmp_path):
    log = tmp_path / "access.log"
    d = daemon("--access-log", str(log))
    d.get("/sum?a=1")
    d.stop()
    assert '"GET /sum?a=1 HTTP/1.1" 200' in log.read_text()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--bogus"], "bogus"),
        (["--port", "tcp:notaport"], "--port tcp:notaport"),
        (["--sample-interval", "0"], "--sample-interval"),
        (["--heartbeat", "-1"], "--heartbeat"),
        (["--www", "/nonexistent/dir"], "--www"),
        (["--config", "/nonexistent/p.toml"], "--config"),
    ],
)
def test_bad_options_stop_startup(args, expected):
    result = run_twistd(["-n", "--pidfile=", "pistatsd", *args])
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert expected in output
    assert "Traceback" not in output


def test_bad_toml_stops_startup(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("port = [\n")
    result = run_twistd(["-n", "--pidfile=", "pistatsd", "--config", str(config)])
    assert result.returncode != 0
    assert "not valid TOML" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("[sensors.fan]\ncommand = 42\n", "--config: [sensors.fan]: command must be"),
        ("[sensors.fan]\ncommand = []\n", "--config: [sensors.fan]: command must be"),
        (
            '[sensors.fan]\ncommand = ["/bin/true"]\nshell = true\n',
            "--config: [sensors.fan]: unknown key 'shell'",
        ),
        (
            '[sensors.fan]\ncommand = ["/bin/true"]\ntimeout = "soon"\n',
            "--config: [sensors.fan]: timeout must be a number",
        ),
    ],
)
def test_bad_sensor_table_stops_startup(tmp_path, table, expected):
    """One line naming the table and the key, after the usage text; no traceback."""
    config = tmp_path / "bad.toml"
    config.write_text(table)
    result = run_twistd(
        [
            "-n",
            "--pidfile=",
            "pistatsd",
            "--port",
            "tcp:0:interface=127.0.0.1",
            "--state-dir",
            str(tmp_path / "state"),
            "--config",
            str(config),
        ]
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if "[sensors" in line]
    assert len(lines) == 1 and expected in lines[0], output


def test_port_in_use_stops_startup():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = run_twistd(
            ["-n", "--pidfile=", "pistatsd", "--port", f"tcp:{port}:interface=127.0.0.1"]
        )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"--port tcp:{port}:interface=127.0.0.1: cannot listen: Address already in use" in output
    assert "Traceback" not in output


def test_daemon_mode_pidfile_and_logfile(tmp_path):
    pidfile, logfile = tmp_path / "p.pid", tmp_path / "p.log"
    result = run_twistd(
        ["--pidfile", str(pidfile), "--logfile", str(logfile), "pistatsd", "--port", LOOPBACK]
    )
    assert result.returncode == 0, result.stderr
    [port] = bound_ports(logfile.read_text())
    pid = int(pidfile.read_text())
    process = psutil.Process(pid)
    try:
        probe = Daemon(port=port)
        assert probe.get("/alive")[2] == b"Alive"
    finally:
        os.kill(pid, signal.SIGTERM)
    # Not our child, so no exit status: psutil waits for it to go, bounded.
    process.wait(timeout=10)
    assert not pidfile.exists()
    assert "Server Shut Down" in logfile.read_text()
    assert "Traceback" not in logfile.read_text()


def test_daemon_mode_port_in_use_reports_to_terminal(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = run_twistd(
            [
                "--pidfile",
                str(tmp_path / "p.pid"),
                "--logfile",
                str(tmp_path / "p.log"),
                "pistatsd",
                "--port",
                f"tcp:{port}:interface=127.0.0.1",
            ]
        )
    assert result.returncode != 0
    assert "cannot listen" in result.stderr


def test_tac_file(tmp_path):
    config = tmp_path / "p.toml"
    state = tmp_path / "state"
    config.write_text(f'port = ["{LOOPBACK}"]\nheartbeat = 0\nstate-dir = "{state}"\n')
    d = Daemon(
        twistd_args=("-n", "--pidfile=", "-y", os.path.join(PROJECT, "etc", "pistatsd.tac")),
        env={"PISTATSD_CONFIG": str(config)},
    )
    d.argv = d.argv[: d.argv.index("pistatsd")]
    d.start()
    try:
        assert d.get("/alive")[2] == b"Alive"
    finally:
        assert d.stop() == 0


@pytest.mark.network
def test_pip_install_into_fresh_venv_finds_plugin(tmp_path):
    """A plain (non-editable) install: twistd lists the plugin and serves the packaged www."""
    if os.environ.get("PISTATSD_SKIP_INSTALL_TEST") == "1":
        pytest.skip("PISTATSD_SKIP_INSTALL_TEST=1")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = str(venv / "bin" / "python")
    subprocess.run(
        [py, "-m", "pip", "install", "-q", PROJECT], check=True, timeout=600, cwd=str(tmp_path)
    )
    listing = subprocess.run(
        [str(venv / "bin" / "twistd"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(tmp_path),
    )
    assert "pistatsd" in listing.stdout
    where = subprocess.run(
        [py, "-c", "import pistatsd.config as c, os; print(c.default_www())"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(tmp_path),
    ).stdout.strip()
    assert where.startswith(str(venv))
    assert os.path.isfile(os.path.join(where, "index.html"))
    # Every module of the package made it into the wheel and imports.
    imported = subprocess.run(
        [
            py,
            "-c",
            "import pkgutil, importlib, pistatsd\n"
            "for m in pkgutil.walk_packages(pistatsd.__path__, 'pistatsd.'):\n"
            "    m.name.endswith('.__main__') or importlib.import_module(m.name)\n"
            "print('ok')",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(tmp_path),
    )
    assert imported.stdout.strip() == "ok", imported.stderr
