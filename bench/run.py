#!/usr/bin/env python3
"""pistatsd vs its peers, in one run, as ratios against the issue's targets.

    python3 bench/run.py [--quick]
                         [--groups http,burst,ws,bcast,influx,tls,dashboards,footprint]
                         [--cpu-quota 0.25] [--results DIR]
                         [--memory [--soak-seconds 600]] [--python VENV/bin/python]

Run from the project root.  Steps (every subprocess has a timeout, every
server listens on 127.0.0.1 only and is stopped by its PID):

 1. ``sh ../shared/bench/setup.sh`` (benchmark venv /tmp/benchvenv + www files),
    then re-executes this script under that venv's python (for psutil).
    The daemon comes from a project venv: /tmp/pistatsd-bench-venv, created
    (``pip install -e . --config-settings editable_mode=compat``) if needed,
    or ``--python PATH`` of an existing venv that already has pistatsd.
 2. Starts pistatsd (``taskset -c 0``, ``--www ../shared/bench/www``,
    heartbeat off, no access log) on a free loopback port, runs the shared
    ``run.py`` against it, then (group ``burst``) ``loadclient.py burst`` with
    ``--burst-clients`` (1000) clients directly; stops it (SIGTERM, expects
    exit status 0).  Then ``run_all.py`` for the peers the targets need
    (tornado, twisted-raw, http.server) with the same ``--groups`` etc.
    Groups http and ws (--reps 2 or more) go rep by rep instead: one rep of
    pistatsd and of every peer at a time, DIR/repN/, merged into DIR
    (--no-interleave: one server after another).
 3. Groups influx, tls, dashboards (bench/groups.py): reporting to a real
    influxd on vs off, pistatsd --tls vs Tornado+TLS (bench/peers_tls.py),
    server CPU with 0/1/50 broadcast clients at 1 s.  For bcast, when the
    shared harness skips pistatsd (its check reads only the first message),
    the same loadclient.py bcast command is run here.
    Group footprint (bench/footprint_group.py): the shared footprint.py,
    pistatsd (defaults; every feature on) beside node_exporter, Glances,
    Netdata.  --cpu-quota F: pistatsd again in a cgroup limited to F of a
    core (bench/cpu_quota.py) for http and footprint: "Pi Zero 2-like" rows.
    Prints and writes DIR/ratios.md (+ ratios.json): one row per target.
 4. ``--memory``: a fresh pistatsd; RSS after 5 s idle, then RSS every 10 s
    during a soak (wrk loads /stats, /sum, /small.html in turn), then idle
    again.  ``--groups none --memory`` runs only this.

The shared scripts are called, never copied.  Raw per-server outputs land in
DIR (pistatsd.json/.txt, <peer>.json/.txt, summary.md, logs/).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
REEXEC_ENV = "PISTATSD_BENCH_REEXEC"
DEFAULT_VENV = "/tmp/pistatsd-bench-venv"
PEERS = ["tornado", "twisted-raw", "http.server"]  # what the targets compare against
SHARED_GROUPS = ("http", "ws", "bcast", "burst")  # run by ../shared/bench/run.py
OWN_GROUPS = ("influx", "tls", "dashboards", "footprint")  # groups.py, footprint_group.py
KNOWN_GROUPS = SHARED_GROUPS + OWN_GROUPS
INTERLEAVED_GROUPS = ("http", "ws")  # one rep of every server at a time (--no-interleave)
SOAK_PATHS = ["/stats", "/sum?a=3&b=3", "/small.html"]
SOAK_SEGMENT = 10  # seconds of wrk per path, in turn
RSS_EVERY = 10.0  # seconds between RSS samples


def log(*a):
    print("[bench]", *a, file=sys.stderr, flush=True)


def run(cmd, timeout, **kw):
    """subprocess.run with a timeout, text output captured unless told otherwise."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run(cmd, timeout=timeout, **kw)


# ---------------------------------------------------------------- targets
# A target turns the pistatsd summary and the peers' summaries (label ->
# run.py "summary" dict) into one table row.  WebSocket / broadcast targets go
# in TARGETS the same way once /ws/* exist (e.g. Ratio("WS echo c=50", ...,
# "twisted-raw", "WS echo c=50", 1.0, group="ws")).


@dataclass
class Row:
    target: str
    figure: str  # pistatsd's figure
    reference: str  # what it is compared with
    ratio: str
    needed: str
    result: str  # pass / MISS / n/a
    note: str = ""
    per_cpu: str = "-"  # the same ratio per server CPU-second (a contention check)


@dataclass
class Ratio:
    """pistatsd's rate in `scenario` >= `factor` x `peer`'s rate in `peer_scenario`."""

    scenario: str
    peer: str
    peer_scenario: str
    factor: float | None  # None: informational, no target
    group: str = "http"

    def label(self):
        return f"{self.scenario} vs {self.peer} {self.peer_scenario}"

    def evaluate(self, mine: dict, peers: dict, extra: dict) -> Row:
        need = "info" if self.factor is None else f">= {self.factor:.2f}x"
        s = mine.get(self.scenario)
        p = peers.get(self.peer, {}).get(self.peer_scenario)
        if not usable(s) or not usable(p):
            why = f"pistatsd: {problem(s)}" if not usable(s) else f"{self.peer}: {problem(p)}"
            return Row(self.label(), cell(s), cell(p), "-", need, "n/a", why)
        r = s["rate"] / p["rate"]
        notes = [n for n in (err_note("pistatsd", s), err_note(self.peer, p)) if n]
        ok = self.factor is None or (r >= self.factor and not notes)
        notes += [n for n in (cpu_note("pistatsd", s), cpu_note(self.peer, p)) if n]
        per_cpu = "-"
        if (s.get("server_cpu") or 0) > 0 and (p.get("server_cpu") or 0) > 0:
            per_cpu = "%.2fx" % (r * p["server_cpu"] / s["server_cpu"])
        return Row(
            self.label(),
            cell(s),
            cell(p),
            f"{r:.2f}x",
            need,
            "info" if self.factor is None else ("pass" if ok else "MISS"),
            "; ".join(notes),
            per_cpu,
        )


@dataclass
class Absolute:
    """A target judged on pistatsd's own figure (burst wall time, ...)."""

    name: str
    group: str
    check: Callable[[dict, dict, dict], Row] = field(repr=False)

    def label(self):
        return self.name

    def evaluate(self, mine, peers, extra):
        return self.check(mine, peers, extra)


def burst_check(limit_s):
    def check(mine, peers, extra):
        b = extra.get("burst_direct")
        name = "burst %s x GET /stats?interval=0.5" % (b["clients"] if b else "?")
        need = f"all ok, <= {limit_s:.1f} s"
        if not b or not b.get("runs"):
            return Row(name, "-", "-", "-", need, "n/a", (b or {}).get("error", "not run"))
        walls = [r.get("wall_s") for r in b["runs"] if "wall_s" in r]
        oks = [r.get("ok", 0) for r in b["runs"]]
        if not walls:
            return Row(name, "FAIL", "-", "-", need, "MISS", str(b["runs"][-1])[:80])
        worst = max(walls)
        ok = all(o == b["clients"] for o in oks) and worst <= limit_s
        fig = f"worst {worst:.2f} s (median {statistics.median(walls):.2f} s, {len(walls)} rep)"
        ref = "tornado 200 clients: {}".format(
            cell(peers.get("tornado", {}).get("burst 200 x /stats?interval=0.5"))
        )
        oks_s = "/".join(f"{o:.0f}" for o in oks)
        p50s = "/".join(fmt0(r.get("p50_ms")) for r in b["runs"])
        maxs = "/".join(fmt0(r.get("max_ms")) for r in b["runs"])
        note = f"ok of {b['clients']} per rep: {oks_s}; p50 {p50s} ms, slowest {maxs} ms"
        errs = [e for r in b["runs"] for e in r.get("errors", [])]
        if errs:
            note += f"; errors e.g. {errs[0]}"
        return Row(name, fig, ref, "-", need, "pass" if ok else "MISS", note)

    return check


def bcast_cell(s):
    if not usable(s):
        return cell(s)
    return "{:.0f} msg/s of {:.0f}; lag p50/p99 {:.1f} / {:.1f} ms; srv CPU {:.0f}%".format(
        s["rate"],
        s.get("expected_rate") or 0,
        s.get("p50_ms") or 0,
        s.get("p99_ms") or 0,
        s.get("server_cpu") or 0,
    )


def bcast_check(n, max_cpu, max_p99):
    """Every message delivered (rate ~= expected), server CPU and p99 lag under limits;
    max_cpu None: informational row."""

    def check(mine, peers, extra):
        sc = f"WS bcast N={n}"
        s = mine.get(sc)
        name = f"broadcast to {n} clients every 0.1 s"
        need = (
            "info"
            if max_cpu is None
            else f">= 98% delivered, srv CPU < {max_cpu}%, p99 lag < {max_p99} ms"
        )
        ref = "; ".join(
            f"{p}: {bcast_cell(peers.get(p, {}).get(sc))}" for p in ("tornado", "twisted-raw")
        )
        if not usable(s):
            return Row(name, cell(s), ref, "-", need, "n/a", problem(s))
        exp = s.get("expected_rate") or n / 0.1
        frac = s["rate"] / exp
        misses = []
        if frac < 0.98:
            misses.append(f"delivered {frac:.1%}")
        if s.get("connected", n) < n:
            misses.append(f"connected {s.get('connected'):.0f}/{n}")
        if (s.get("closed_early") or 0) > 0:
            misses.append(f"{s['closed_early']:.0f} closed early")
        if max_cpu is not None and (s.get("server_cpu") or 0) >= max_cpu:
            misses.append(f"srv CPU {s.get('server_cpu'):.0f}% >= {max_cpu}%")
        if max_p99 is not None and (s.get("p99_ms") or 1e9) >= max_p99:
            misses.append(f"p99 {s.get('p99_ms')} ms >= {max_p99} ms")
        note = "reps {}; loadclient CPU {:.0f}%".format(s.get("n", "?"), s.get("client_cpu") or 0)
        if s.get("direct"):
            note += (
                "; per rep: rate {}, p99 {} ms, srv CPU {}% (loadclient.py run by bench/run.py: "
                "the shared check reads only the first message, pistatsd's 'hello')".format(
                    s.get("reps"), s.get("p99_reps"), s.get("cpu_reps")
                )
            )
        if misses:
            note = "; ".join(misses) + "; " + note
        result = "info" if max_cpu is None else ("MISS" if misses else "pass")
        return Row(name, bcast_cell(s), ref, f"{frac:.3f} delivered", need, result, note)

    return check


def own_rows(kind):
    """Rows of bench/groups.py (influx, tls, dashboards), built from `extra`."""

    def check(mine, peers, extra):
        import groups

        return getattr(groups, kind + "_rows")(sys.modules[__name__], extra)

    return check


def footprint_targets(mine, peers, extra):
    import footprint_group

    return footprint_group.footprint_rows(sys.modules[__name__], extra)


def quota_http_targets(mine, peers, extra):
    import footprint_group

    return footprint_group.quota_http_rows(sys.modules[__name__], mine, extra)


TARGETS = [
    Ratio("GET /sum", "twisted-raw", "GET /sum", 0.9),
    Ratio("GET /sum", "tornado", "GET /sum", 3.0),
    Ratio("GET /sum", "http.server", "GET /sum", 1.0),
    Ratio("GET /stats", "twisted-raw", "GET /sum", 0.9),
    Ratio("GET /stats", "tornado", "GET /stats", 3.0),
    Ratio("GET /stats", "http.server", "GET /stats", 1.0),
    Ratio("POST /sum", "twisted-raw", "POST /sum", 0.9),
    Ratio("POST /sum", "tornado", "POST /sum", 3.0),
    Ratio("POST /sum", "http.server", "POST /sum", 1.0),
    Ratio("GET /small.html", "twisted-raw", "GET /small.html", None),
    Ratio("GET /big.bin", "http.server", "GET /big.bin", 1.0),
    Absolute("burst x /stats?interval=0.5", "burst", burst_check(1.0)),
    Ratio("WS echo c=1", "tornado", "WS echo c=1", 1.0, group="ws"),
    Ratio("WS echo c=50", "tornado", "WS echo c=50", None, group="ws"),
    Ratio("WS echo c=1", "twisted-raw", "WS echo c=1", None, group="ws"),
    Ratio("WS echo c=50", "twisted-raw", "WS echo c=50", 0.9, group="ws"),
    Absolute("broadcast N=1000", "bcast", bcast_check(1000, 20.0, 40.0)),
    Absolute("broadcast N=100", "bcast", bcast_check(100, None, None)),
    Absolute("influx", "influx", own_rows("influx")),
    Absolute("tls", "tls", own_rows("tls")),
    Absolute("dashboards", "dashboards", own_rows("dashboards")),
    Absolute("footprint", "footprint", footprint_targets),
    Absolute("Pi Zero 2-like http", "http", quota_http_targets),
]


def usable(s):
    return (
        bool(s)
        and "skipped" not in s
        and "error" not in s
        and isinstance(s.get("rate"), (int, float))
        and s["rate"] > 0
    )


def problem(s):
    if not s:
        return "not run"
    if "skipped" in s:
        return "check {} failed".format(s["skipped"])
    return str(s.get("error", "no rate"))[:60]


def err_note(who, s):
    return f"{who} had {s['errors']} wrk errors" if s.get("errors") else ""


def cpu_note(who, s):
    """A single-threaded server under wrk -c50 should use ~100% of its core."""
    cpu = s.get("server_cpu")
    return f"{who} srv CPU {cpu:.0f}%" if isinstance(cpu, (int, float)) and cpu < 80 else ""


def fmt0(v):
    return "-" if v is None else f"{v:.0f}"


def cell(s):
    if not usable(s):
        return "n/a" if not s or "skipped" in s else "FAIL"
    if s.get("unit") == "wall s":
        return f"{s['rate']:.2f} s ({s.get('ok', 0):.0f}/{s.get('clients', 0):.0f} ok)"
    return "{:.0f} {} (p99 {:.1f} ms)".format(s["rate"], s.get("unit", ""), s.get("p99_ms") or 0)


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


# ---------------------------------------------------------------- helpers
def git_commit():
    try:
        sha = run(["git", "-C", PROJECT, "rev-parse", "--short", "HEAD"], 10).stdout.strip()
        st = run(
            [
                "git",
                "--no-optional-locks",
                "-C",
                PROJECT,
                "status",
                "--porcelain",
                "--",
                ".",
                ":(exclude)bench",
            ],
            20,
        ).stdout
        return sha + ("-dirty" if st.strip() else "") if sha else "unknown"
    except Exception as e:
        return f"unknown ({e})"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def raise_nofile(want=16384):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < new:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def ensure_project_python(a):
    """The python of a venv with pistatsd (editable) installed; create one if needed."""
    if a.python:
        py = os.path.abspath(a.python)  # daemons run in other folders
        r = run([py, "-c", "import pistatsd, twisted; print(pistatsd.__file__)"], 60)
        if r.returncode != 0:
            sys.exit(f"--python {py} cannot import pistatsd: {r.stderr.strip()[-200:]}")
        log(f"daemon from {py} (pistatsd at {r.stdout.strip()})")
        return py
    py = os.path.join(a.venv, "bin", "python")
    if not os.path.exists(py):
        log(f"creating {a.venv}")
        run([sys.executable, "-m", "venv", a.venv], 300, check=True)
    r = run(
        [py, "-c", "import pistatsd, twisted.plugins.pistatsd_plugin; print(pistatsd.__file__)"], 60
    )
    installed_here = r.returncode == 0 and r.stdout.strip().startswith(PROJECT + os.sep)
    if a.reinstall or not installed_here:
        log(f"pip install -e {PROJECT} into {a.venv}")
        r = run(
            [
                py,
                "-m",
                "pip",
                "install",
                "-q",
                "-e",
                PROJECT,
                "--config-settings",
                "editable_mode=compat",
            ],
            900,
        )
        if r.returncode != 0:
            sys.exit("pip install failed:\n" + r.stderr[-2000:])
    return py


def twistd_cmd(py):
    twistd = os.path.join(os.path.dirname(py), "twistd")
    if os.path.exists(twistd):
        return [twistd]
    return [py, "-c", "from twisted.scripts.twistd import run; run()"]


def daemon_cmd(py):
    """The daemon's command before its options, as the README and the systemd unit
    run it: the ``pistatsd`` command (twistd -n --pidfile= pistatsd without the
    plugin scan), or twistd itself for a venv that predates it."""
    launcher = os.path.join(os.path.dirname(py), "pistatsd")
    if os.path.exists(launcher):
        return [launcher]
    return [*twistd_cmd(py), "-n", "--pidfile=", "pistatsd"]


class Daemon:
    """One pistatsd process, pinned to core 0, on a free loopback port."""

    def __init__(
        self,
        py,
        www,
        logdir,
        name,
        core=0,
        extra_args=(),
        bcast_interval=0.1,
        tls_state=None,
        prefix=(),
    ):
        self.py, self.www, self.name, self.core = py, www, name, core
        self.prefix = list(prefix)  # e.g. CpuQuota.prefix(): join a cgroup, then exec
        self.extra_args, self.bcast_interval = list(extra_args), bcast_interval
        self.tls_state, self.tls_port = tls_state, None
        self.logpath = os.path.join(logdir, name + ".log")
        self.port = None
        self.proc = None
        self.exit = None

    def help_text(self):
        r = run([*daemon_cmd(self.py), "--help"], 60)
        return r.stdout + r.stderr

    def start(self):
        self.port = free_port()
        cmd = [
            *self.prefix,
            "taskset",
            "-c",
            str(self.core),
            *daemon_cmd(self.py),
            "--port",
            f"tcp:{self.port}:interface=127.0.0.1",
            "--www",
            self.www,
            "--heartbeat",
            "0",
        ]
        if "--broadcast-interval" in self.help_text():
            cmd += ["--broadcast-interval", f"{self.bcast_interval:g}"]
        if self.tls_state:
            self.tls_port = free_port()
            cmd += [
                "--tls",
                f"ssl:{self.tls_port}:interface=127.0.0.1",
                "--state-dir",
                self.tls_state,
            ]
        elif "--state-dir" not in self.extra_args:
            # A state dir of its own (history, sensors), never the machine's real one.
            state = os.path.join(os.path.dirname(self.logpath), self.name + "-state")
            os.makedirs(state, exist_ok=True)
            cmd += ["--state-dir", state]
        cmd += self.extra_args
        # no --access-log: pistatsd writes none unless given one
        self.cmd = cmd
        self.logf = open(self.logpath, "w")  # noqa: SIM115 (closed in stop())
        self.logf.write("$ {}\n".format(" ".join(cmd)))
        self.logf.flush()
        self.proc = subprocess.Popen(
            cmd, cwd=os.path.dirname(self.logpath), stdout=self.logf, stderr=subprocess.STDOUT
        )
        if not wait_port(self.port, 30) or (self.tls_port and not wait_port(self.tls_port, 30)):
            self.stop()
            sys.exit(f"pistatsd did not start; see {self.logpath}")
        log(f"{self.name}: pid {self.proc.pid} on 127.0.0.1:{self.port}")
        return self

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        """SIGTERM by PID; returns 'exit 0' or what went wrong."""
        if self.proc is None or self.exit is not None:
            return self.exit
        if self.proc.poll() is not None:
            self.exit = f"had already exited with {self.proc.returncode}"
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(20)
                self.exit = f"exit {rc}"
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                self.exit = "did not exit within 20 s of SIGTERM; killed"
        self.logf.close()
        log(f"{self.name} stopped: {self.exit}")
        return self.exit


class ForeignCpu:
    """CPU used by processes outside this benchmark's own process tree.

    Other people's builds, tests or benchmarks on this 2-core machine take
    cores from the server (core 0) or the load generator (core 1) and make
    ratios meaningless; this samples every process once a second and sums
    the CPU of those that are not us or our descendants (100 = one core)."""

    def __init__(self, every=1.0):
        self.every = every
        self.samples = []  # foreign CPU % per interval
        self.top = {}  # name -> CPU seconds
        self._stop = threading.Event()
        self._thread = None

    def _snapshot(self):
        import psutil

        me = psutil.Process()
        ours = {me.pid} | {c.pid for c in me.children(recursive=True)}
        snap = {}
        for p in psutil.process_iter(["name", "cpu_times", "create_time"]):
            if p.pid in ours or p.info["cpu_times"] is None:
                continue
            t = p.info["cpu_times"]
            snap[(p.pid, p.info["create_time"])] = (t.user + t.system, p.info["name"])
        return snap

    def _run(self):
        prev, t_prev = self._snapshot(), time.monotonic()
        while not self._stop.wait(self.every):
            cur, now = self._snapshot(), time.monotonic()
            used = 0.0
            for key, (cpu, name) in cur.items():
                base = prev.get(key, (0.0, name))[0] if key in prev else 0.0
                d = max(0.0, cpu - base)
                used += d
                if d > 0.0:
                    self.top[name] = self.top.get(name, 0.0) + d
            self.samples.append(100.0 * used / max(1e-6, now - t_prev))
            prev, t_prev = cur, now

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)

    def summary(self):
        if not self.samples:
            return {"avg": 0.0, "max": 0.0, "n": 0, "top": []}
        top = sorted(self.top.items(), key=lambda kv: -kv[1])[:3]
        return {
            "avg": round(statistics.mean(self.samples), 1),
            "max": round(max(self.samples), 1),
            "n": len(self.samples),
            "top": ["{} {:.1f}s".format(*kv) for kv in top],
        }


def wait_quiet(limit_s, threshold, need=5):
    """Wait (at most limit_s) until foreign CPU stays under threshold for `need` s."""
    if limit_s <= 0:
        return True
    t0 = time.monotonic()
    with ForeignCpu() as mon:
        while time.monotonic() - t0 < limit_s:
            time.sleep(1.0)
            recent = mon.samples[-need:]
            if len(recent) == need and max(recent) < threshold:
                return True
    log(f"machine not quiet after {limit_s}s (foreign CPU {mon.summary()}); going on")
    return False


def measured(a, name, fn):
    """Run one phase under the foreign-CPU monitor; retry it once if it was contended."""
    for attempt in range(a.retries + 1):
        wait_quiet(a.wait_quiet, a.quiet_threshold)
        with ForeignCpu() as mon:
            out = fn()
        s = mon.summary()
        s["attempt"] = attempt + 1
        log(
            "{}: foreign CPU avg {:.1f}%, max {:.1f}% ({})".format(
                name, s["avg"], s["max"], ", ".join(s["top"])
            )
        )
        if s["avg"] <= a.contended or attempt == a.retries:
            return out, s
        log(f"{name} was contended (avg > {a.contended:g}%): running it again")
    return out, s


# ---------------------------------------------------------------- phases
def shared_groups(a):
    return [g for g in a.groups if g in SHARED_GROUPS]


def shared_passthrough(a, groups=None):
    args = [
        "--groups",
        ",".join(groups or shared_groups(a)),
        "--reps",
        str(a.reps),
        "--duration",
        str(a.duration),
    ]
    return args


def peers_for(a):
    """Only the peers some selected target compares against."""
    g = set(shared_groups(a))
    want = {
        "tornado": g & {"http", "ws", "bcast", "burst"},
        "twisted-raw": g & {"http", "ws", "bcast"},
        "http.server": g & {"http"},
    }
    return [p for p in PEERS if want[p]]


def bench_pistatsd(a, py, bpy, label="pistatsd", groups=None, prefix=()):
    """The shared run.py (and the direct bcast/burst loads) against one pistatsd;
    `label` names its JSON, `groups` narrows the shared groups, `prefix` goes
    before the daemon's command line."""
    groups = groups or shared_groups(a)
    d = Daemon(py, a.www, a.logdir, label, prefix=prefix).start()
    extra = {"port": d.port, "cmd": " ".join(d.cmd)}
    try:
        time.sleep(1.0)
        cmd = [
            bpy,
            os.path.join(a.shared, "run.py"),
            d.url,
            "--label",
            label,
            "--ts-key",
            "sent",
            "--json",
            os.path.join(a.results, f"{label}.json"),
            *shared_passthrough(a, groups),
        ]
        log("$ " + " ".join(cmd))
        with open(os.path.join(a.logdir, f"{label}-run.log"), "w") as errf:
            r = run(cmd, 3600, stdout=subprocess.PIPE, stderr=errf, capture_output=False)
        with open(os.path.join(a.results, f"{label}.txt"), "w") as f:
            f.write(r.stdout)
        print(r.stdout, flush=True)
        if "bcast" in groups and bcast_skipped(a):
            extra["bcast_direct"] = bcast_direct(a, bpy, d)
        if "burst" in groups:
            extra["burst_direct"] = burst_direct(a, bpy, d)
    finally:
        extra["stop"] = d.stop()
    return extra


def bench_pistatsd_quota(a, py, bpy):
    """Group http again, against a pistatsd in a cgroup limited to --cpu-quota of a core
    (the "Pi Zero 2-like" rows); the summary lands in `extra` for the rows."""
    from cpu_quota import CpuQuota

    out = {"fraction": a.cpu_quota}
    with CpuQuota(a.cpu_quota, "http") as q:
        out["quota"] = q.describe()
        sub = bench_pistatsd(a, py, bpy, "pistatsd-quota", ["http"], q.prefix())
        out["cgroup"] = q.stat()
    out.update(cmd=sub.get("cmd"), stop=sub.get("stop"))
    try:
        with open(os.path.join(a.results, "pistatsd-quota.json")) as f:
            out["summary"] = json.load(f).get("summary", {})
    except (OSError, ValueError) as e:
        out["error"] = f"no pistatsd-quota.json: {e}"
    return out


BCAST_CLIENTS = (100, 1000)  # as the shared run.py


def bcast_skipped(a):
    """The shared run.py's broadcast check reads only the first message; pistatsd
    greets with {"type": "hello", ...} (no `sent`), so it skips the scenario."""
    try:
        with open(os.path.join(a.results, "pistatsd.json")) as f:
            s = json.load(f)["summary"]
        return any("skipped" in s.get(f"WS bcast N={n}", {"skipped": 1}) for n in BCAST_CLIENTS)
    except (OSError, ValueError, KeyError):
        return True


def bcast_direct(a, bpy, d):
    """The shared run.py's broadcast scenario, the same loadclient.py command, run here:
    N=100 and 1000, --reps interleaved passes, median per N."""
    runs = {n: [] for n in BCAST_CLIENTS}
    ws = d.url.replace("http://", "ws://") + "/ws/broadcast"
    for _ in range(a.reps):
        for n in BCAST_CLIENTS:
            cmd = [
                "taskset",
                "-c",
                "1",
                bpy,
                os.path.join(a.shared, "loadclient.py"),
                "bcast",
                ws,
                "--clients",
                str(n),
                "--duration",
                str(a.duration),
                "--warmup",
                "1",
                "--interval",
                "0.1",
                "--ts-key",
                "sent",
                "--impl",
                "lean",
                "--pids",
                str(d.proc.pid),
            ]
            try:
                r = run(cmd, a.duration + 200)
                m = re.search(r"^RESULT (\{.*\})$", r.stdout, re.M)
                res = json.loads(m.group(1)) if m else {"error": (r.stderr or r.stdout)[-300:]}
            except subprocess.TimeoutExpired:
                res = {"error": "loadclient timed out"}
            runs[n].append(res)
            log(f"bcast N={n}: {json.dumps(res)[:220]}")
            time.sleep(1.0)
    out = {}
    for n, rs in runs.items():
        good = [r for r in rs if "error" not in r]
        if not good:
            out[f"WS bcast N={n}"] = {"error": rs[-1]["error"] if rs else "not run"}
            continue
        keys = (
            "rate",
            "expected_rate",
            "p50_ms",
            "p99_ms",
            "max_ms",
            "server_cpu",
            "client_cpu",
            "connected",
            "closed_early",
            "no_ts",
            "clients_receiving",
        )
        summ = {
            k: statistics.median([r[k] for r in good if isinstance(r.get(k), (int, float))])
            for k in keys
            if any(isinstance(r.get(k), (int, float)) for r in good)
        }
        summ.update(
            {
                "unit": "msg/s",
                "n": len(good),
                "reps": [r.get("rate") for r in good],
                "p99_reps": [r.get("p99_ms") for r in good],
                "cpu_reps": [r.get("server_cpu") for r in good],
                "direct": True,
            }
        )
        out[f"WS bcast N={n}"] = summ
    return out


def burst_direct(a, bpy, d):
    """loadclient.py burst with --burst-clients clients, straight at pistatsd."""
    url = d.url + "/stats?interval=0.5"
    out = {"clients": a.burst_clients, "url": url, "runs": []}
    for i in range(a.burst_reps):
        cmd = [
            "taskset",
            "-c",
            "1",
            bpy,
            os.path.join(a.shared, "loadclient.py"),
            "burst",
            url,
            "--clients",
            str(a.burst_clients),
            "--timeout",
            "60",
            "--pids",
            str(d.proc.pid),
        ]
        if i == 0:
            log("$ " + " ".join(cmd))
        try:
            r = run(cmd, 120)
            m = re.search(r"^RESULT (\{.*\})$", r.stdout, re.M)
            res = json.loads(m.group(1)) if m else {"error": (r.stderr or r.stdout)[-300:]}
        except subprocess.TimeoutExpired:
            res = {"error": "loadclient timed out"}
        out["runs"].append(res)
        log(f"burst {a.burst_clients} rep {i + 1}: {json.dumps(res)[:200]}")
        time.sleep(2.0)  # let the 1000 closed sockets clear TIME_WAIT churn
    return out


def bench_peer(a, bpy, peer, groups=None):
    cmd = [
        bpy,
        os.path.join(a.shared, "run_all.py"),
        "--results",
        a.results,
        peer,
        "--",
        *shared_passthrough(a, groups),
    ]
    log("$ " + " ".join(cmd))
    r = run(cmd, 2 * 3600, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, capture_output=False)
    with open(os.path.join(a.logdir, f"run_all-{peer}.log"), "w") as f:
        f.write(r.stdout)
    if r.returncode != 0:
        log(f"run_all.py {peer} exited {r.returncode} (see logs/run_all-{peer}.log)")


def interleaved_groups(a):
    """The shared groups measured one rep of every server at a time (see interleaved)."""
    if not a.interleave or a.reps < 2:
        return []
    return [g for g in shared_groups(a) if g in INTERLEAVED_GROUPS]


def one_rep(a, i):
    """A copy of the options for rep i of an interleaved run: 1 rep, its own folder."""
    sub = argparse.Namespace(**vars(a))
    sub.reps = 1
    sub.results = os.path.join(a.results, f"rep{i + 1}")
    sub.logdir = os.path.join(sub.results, "logs")
    os.makedirs(sub.logdir, exist_ok=True)
    return sub


def interleaved(a, py, bpy, groups, contention, keep_base):
    """Groups http and ws, rep by rep: in each rep pistatsd and then every peer run
    the shared harness once (--reps 1), the order turned by one each rep.

    Run one server after another, --reps 3 puts minutes between pistatsd and
    the peer it is divided by; this machine's speed drifts by up to 30% over
    such spans, so ratios moved more between runs than the targets' margins.
    Rep by rep, a drift slows every server alike.  The reps' JSON is merged
    into DIR/<server>.json, medians recomputed by the shared harness's own
    summarize()."""
    servers = ["pistatsd"] + ([] if a.no_peers else peers_for(a))
    extra: dict = {}
    stops = set()
    dirs = []
    for i in range(a.reps):
        sub = one_rep(a, i)
        dirs.append(sub.results)
        turn = i % len(servers)
        for who in servers[turn:] + servers[:turn]:
            key = f"{who} rep {i + 1}"
            if who == "pistatsd":
                ex, contention[key] = measured(
                    sub, key, lambda s=sub: bench_pistatsd(s, py, bpy, groups=groups)
                )
                extra.update(port=ex.get("port"), cmd=ex.get("cmd"))
                stops.add(str(ex.get("stop")))
            else:
                _, contention[key] = measured(
                    sub, key, lambda s=sub, p=who: bench_peer(s, bpy, p, groups)
                )
    merge_reps(a, servers, dirs, keep_base)
    extra["stop"] = ", ".join(sorted(stops))
    return extra


def shared_summarize(shared):
    """summarize() of the shared run.py, so merged reps get the same medians."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("shared_run", os.path.join(shared, "run.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.summarize


def merge_reps(a, labels, dirs, keep_base):
    """DIR/repN/<label>.json into DIR/<label>.json: the runs of every rep, the
    summary recomputed; with keep_base, merged into the file the groups run
    the usual way (bcast, burst) wrote there before."""
    summarize = shared_summarize(a.shared)
    for label in labels:
        reps = []
        for d in dirs:
            p = os.path.join(d, label + ".json")
            if os.path.exists(p):
                with open(p) as f:
                    reps.append(json.load(f))
        if not reps:
            log(f"{label}: no rep wrote {label}.json")
            continue
        out_path = os.path.join(a.results, label + ".json")
        out = reps[0]
        if keep_base and os.path.exists(out_path):
            with open(out_path) as f:
                out = json.load(f)
        runs: dict[str, list] = {}
        units: dict[str, str] = {}
        skipped: dict[str, dict] = {}
        for r in reps:
            for name, s in r.get("summary", {}).items():
                units[name] = s.get("unit", "")
                if "skipped" in s:
                    skipped[name] = s
            for name, rs in r.get("runs", {}).items():
                runs.setdefault(name, []).extend(rs)
        summary = dict(out.get("summary", {}))
        for name, unit in units.items():
            if runs.get(name):
                s = summarize(runs[name], unit)
                s["unit"] = unit
                summary[name] = s
            elif name in skipped:
                summary[name] = skipped[name]
        out["summary"] = summary
        out["runs"] = {**out.get("runs", {}), **runs}
        out["interleaved_reps"] = [os.path.relpath(d, a.results) for d in dirs]
        with open(out_path, "w") as f:
            json.dump(out, f, indent=1)


def load_summaries(a):
    def one(label):
        p = os.path.join(a.results, label + ".json")
        if not os.path.exists(p):
            return {}
        with open(p) as f:
            return json.load(f).get("summary", {})

    return one("pistatsd"), {p: one(p) for p in PEERS}


def merged_mine(mine, extra):
    """pistatsd's summaries, with the broadcast rows bench/run.py measured itself."""
    return {**mine, **(extra.get("bcast_direct") or {})}


def wrk_rate(out):
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    return float(m.group(1)) if m else None


def memory_phase(a, py):
    """Idle RSS, then RSS under a mixed wrk soak, with every feature on: TLS (a
    self-signed pair made in the state dir), reporting to a throwaway influxd, a
    throwaway mosquitto when --mqtt exists, and the history store and built-in alerts
    (on by default)."""
    import groups
    from footprint_group import Mosquitto

    with contextlib.ExitStack() as stack:
        state = stack.enter_context(tempfile.TemporaryDirectory(prefix="pistatsd-soak-"))
        influx = stack.enter_context(groups.InfluxdHelper(py, a.logdir))
        extra = ["--influx", influx.url, "--influx-create-db", "--report-interval", "10"]
        features = ["tls", "influx", "history", "alerts"]
        if "--mqtt" in Daemon(py, a.www, a.logdir, "help").help_text():
            mq = stack.enter_context(Mosquitto(sys.modules[__name__], a.logdir))
            extra += ["--mqtt", mq.url]
            features.append("mqtt")
        d = Daemon(py, a.www, a.logdir, "pistatsd-memory", extra_args=extra, tls_state=state)
        return _soak(a, d.start(), features)


def _soak(a, d, features):
    import psutil

    res = {
        "soak_seconds": a.soak_seconds,
        "segment_s": SOAK_SEGMENT,
        "paths": SOAK_PATHS,
        "features": features,
        "command": " ".join(d.cmd),
    }
    mb = 1 << 20
    try:
        proc = psutil.Process(d.proc.pid)
        time.sleep(5.0)
        res["idle_rss"] = proc.memory_info().rss
        log("idle RSS after 5 s: %.1f MiB" % (res["idle_rss"] / mb))
        samples, stop = [], threading.Event()
        t0 = time.monotonic()

        def sampler():
            while True:
                try:
                    samples.append((round(time.monotonic() - t0, 1), proc.memory_info().rss))
                except psutil.Error:
                    return
                if stop.wait(RSS_EVERY):
                    return

        th = threading.Thread(target=sampler, daemon=True)
        th.start()
        segs, i = [], 0
        while time.monotonic() - t0 < a.soak_seconds:
            left = a.soak_seconds - (time.monotonic() - t0)
            dur = max(1, min(SOAK_SEGMENT, round(left)))
            path = SOAK_PATHS[i % len(SOAK_PATHS)]
            i += 1
            try:
                r = run(
                    [
                        "taskset",
                        "-c",
                        "1",
                        "wrk",
                        "-t1",
                        "-c50",
                        f"-d{dur}s",
                        "--timeout",
                        "10s",
                        d.url + path,
                    ],
                    dur + 30,
                )
                rate = wrk_rate(r.stdout)
                errs = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors:.*", r.stdout)
            except subprocess.TimeoutExpired:
                rate, errs = None, None
            segs.append(
                {"path": path, "s": dur, "rate": rate, "errors": errs.group(0) if errs else ""}
            )
            if proc.status() == psutil.STATUS_ZOMBIE or not proc.is_running():
                res["error"] = "pistatsd died during the soak"
                break
        stop.set()
        th.join(RSS_EVERY + 5)
        with contextlib.suppress(psutil.Error):
            samples.append((round(time.monotonic() - t0, 1), proc.memory_info().rss))
        time.sleep(5.0)
        with contextlib.suppress(psutil.Error):
            res["idle_rss_after"] = proc.memory_info().rss
        rss = [s for _, s in samples]
        res.update(
            {
                "samples": samples,
                "segments": segs,
                "requests": int(sum((s["rate"] or 0) * s["s"] for s in segs)),
                "rss_first": rss[0],
                "rss_last": rss[-1],
                "rss_min": min(rss),
                "rss_max": max(rss),
            }
        )
    finally:
        res["stop"] = d.stop()
    with open(os.path.join(a.results, "memory.json"), "w") as f:
        json.dump(res, f, indent=1)
    return res


def memory_md(m):
    mb = 1 << 20
    if "rss_first" not in m:
        return "Memory: {}".format(m.get("error", "no samples"))

    def f(v):
        return "%.1f MiB" % (v / mb) if isinstance(v, (int, float)) else "-"

    rows = [
        ["idle RSS (5 s after start)", f(m.get("idle_rss"))],
        ["soak RSS first / last", "{} / {}".format(f(m["rss_first"]), f(m["rss_last"]))],
        ["soak RSS min / max", "{} / {}".format(f(m["rss_min"]), f(m["rss_max"]))],
        ["drift (last - first)", "%+.1f MiB" % ((m["rss_last"] - m["rss_first"]) / mb)],
        ["idle RSS 5 s after the soak", f(m.get("idle_rss_after"))],
        ["features on", ", ".join(m.get("features", ["defaults"]))],
        [
            "soak",
            f"{m['soak_seconds']} s, {len(m['samples'])} samples every {RSS_EVERY:g} s, "
            f"~{m['requests']} requests (wrk -c50, {SOAK_SEGMENT} s per path: "
            f"{', '.join(SOAK_PATHS)})",
        ],
    ]
    fc = m.get("foreign_cpu")
    if fc:
        rows.append(
            ["other processes' CPU", "avg {:.0f}%, max {:.0f}%".format(fc["avg"], fc["max"])]
        )
    if m.get("error"):
        rows.append(["error", m["error"]])
    if m.get("stop"):
        rows.append(["stop", m["stop"]])
    return md_table(["memory", "value"], rows)


def report(a, commit, started, extra, mem):
    mine, peers = load_summaries(a)
    mine = merged_mine(mine, extra)
    rows = []
    for t in TARGETS:
        if t.group in a.groups:
            r = t.evaluate(mine, peers, extra)
            rows += r if isinstance(r, list) else [r]
    lines = [
        "# pistatsd vs peers: targets",
        "",
        "commit `{}`, {}, {}; {}".format(
            commit,
            started.strftime("%Y-%m-%d %H:%M %Z").strip(),
            platform.node(),
            f"quick run (reps {a.reps}, {a.duration} s per wrk)"
            if a.quick
            else f"reps {a.reps}, wrk {a.duration} s per measurement",
        ),
        "",
    ]
    if rows:
        lines.append(
            md_table(
                [
                    "target",
                    "pistatsd",
                    "reference",
                    "ratio",
                    "needed",
                    "result",
                    "per CPU-s",
                    "notes",
                ],
                [
                    [
                        r.target,
                        r.figure,
                        r.reference,
                        r.ratio,
                        r.needed,
                        r.result,
                        r.per_cpu,
                        r.note,
                    ]
                    for r in rows
                ],
            )
        )
        n_pass = sum(r.result == "pass" for r in rows)
        n_miss = sum(r.result == "MISS" for r in rows)
        n_info = sum(r.result == "info" for r in rows)
        lines += [
            "",
            f"{n_pass} pass, {n_miss} miss, {n_info} informational, "
            f"{len(rows) - n_pass - n_miss - n_info} n/a.  Ratios use "
            "the medians of the reps, measured in this run (same machine, server on core 0, "
            "load on core 1). Differences under ~10% are noise (../shared/bench/BASELINE.md). "
            "'per CPU-s' is the same ratio of requests per CPU-second of each server (the "
            "shared harness's srv CPU%): not the target, but much less sensitive to other "
            "processes taking the server's core; it matches 'ratio' when both servers were "
            "CPU-bound and undisturbed.",
        ]
        cont = extra.get("contention") or {}
        if cont:
            lines.append(
                "Other processes' CPU while each server was measured (avg / max of "
                "1 s samples, 100 = one core): "
                + "; ".join(
                    "{} {:.0f}% / {:.0f}%{}".format(
                        k,
                        v["avg"],
                        v["max"],
                        f" (attempt {v['attempt']})" if v.get("attempt", 1) > 1 else "",
                    )
                    for k, v in cont.items()
                )
                + "."
            )
            if any(v["avg"] > a.contended for v in cont.values()):
                lines.append(
                    "**Warning: the machine was busy during this run; ratios are unreliable.**"
                )
        if extra.get("stop"):
            lines.append(
                "pistatsd ({}) stopped by SIGTERM: {}.".format(extra.get("cmd", ""), extra["stop"])
            )
    if mem:
        lines += ["", memory_md(mem)]
    md = "\n".join(lines) + "\n"
    with open(os.path.join(a.results, "ratios.md"), "w") as f:
        f.write(md)
    with open(os.path.join(a.results, "ratios.json"), "w") as f:
        json.dump(
            {
                "commit": commit,
                "started": started.isoformat(),
                "groups": a.groups,
                "rows": [r.__dict__ for r in rows],
                "extra": extra,
                "memory": mem,
            },
            f,
            indent=1,
            default=str,
        )
    print(md, flush=True)
    return rows


# ---------------------------------------------------------------- main
def parse_args(argv):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="1 rep, 2 s per wrk measurement, 1 burst rep (a smoke test)",
    )
    ap.add_argument(
        "--groups",
        default=None,
        help="comma list of http,ws,bcast,burst,influx,tls,dashboards, or 'none' "
        "[http,burst; with --report-only: the groups of that run]",
    )
    ap.add_argument(
        "--results", default=os.path.join(HERE, "results"), help="output folder [bench/results]"
    )
    ap.add_argument(
        "--shared",
        default=os.path.join(PROJECT, "..", "shared", "bench"),
        help="the shared harness [../shared/bench]",
    )
    ap.add_argument(
        "--python",
        default=None,
        help="python of an existing venv with pistatsd installed (no installs)",
    )
    ap.add_argument("--venv", default=DEFAULT_VENV, help="project venv to create/reuse")
    ap.add_argument("--reinstall", action="store_true", help="pip install -e again")
    ap.add_argument("--bench-venv", default=os.environ.get("BENCH_VENV", "/tmp/benchvenv"))
    ap.add_argument("--reps", type=int, default=None, help="passed to the shared run.py [2]")
    ap.add_argument("--duration", type=int, default=None, help="wrk seconds, passed through [5]")
    ap.add_argument("--burst-clients", type=int, default=1000)
    ap.add_argument("--burst-reps", type=int, default=None, help="[3; 1 with --quick]")
    ap.add_argument(
        "--no-interleave",
        dest="interleave",
        action="store_false",
        help="groups http and ws: run every rep of one server before the next "
        "(default: one rep of every server at a time, DIR/repN/)",
    )
    ap.add_argument(
        "--no-peers",
        action="store_true",
        help="reuse the peers' JSON already in --results instead of running them",
    )
    ap.add_argument(
        "--wait-quiet",
        type=int,
        default=120,
        help="before each server, wait up to this many s for other processes' CPU "
        "to stay under --quiet-threshold for 5 s (0 = do not wait) [120]",
    )
    ap.add_argument(
        "--quiet-threshold",
        type=float,
        default=10.0,
        help="foreign CPU %% (100 = one core) that counts as quiet [10]",
    )
    ap.add_argument(
        "--contended",
        type=float,
        default=15.0,
        help="a server's phase is run again (--retries) when other processes "
        "averaged more than this CPU %% during it [15]",
    )
    ap.add_argument("--retries", type=int, default=1)
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: rewrite DIR/ratios.md from the JSON of an earlier run in DIR",
    )
    ap.add_argument("--memory", action="store_true", help="idle RSS + RSS drift under a soak")
    ap.add_argument("--soak-seconds", type=int, default=600)
    ap.add_argument(
        "--cpu-quota",
        type=float,
        default=None,
        metavar="F",
        help="also run pistatsd limited to F of one core (cgroup CPU quota) in the http "
        "and footprint groups: the 'Pi Zero 2-like' rows (e.g. 0.25)",
    )
    ap.add_argument(
        "--fp-seconds",
        type=float,
        default=None,
        help="footprint: seconds per idle / watched phase, passed as footprint.py "
        "--seconds [60; 10 with --quick]",
    )
    ap.add_argument(
        "--fp-report-interval",
        type=float,
        default=10.0,
        help="footprint, every feature on: pistatsd --report-interval to influxd [10]",
    )
    ap.add_argument(
        "--glances",
        default=os.environ.get("GLANCES", "/tmp/glances-venv/bin/glances"),
        help="footprint: the glances executable (pip 'glances[web]' into its venv if "
        "missing) [/tmp/glances-venv/bin/glances]",
    )
    ap.add_argument(
        "--dash-seconds",
        type=int,
        default=None,
        help="dashboards: seconds of CPU measurement per case [20; 5 with --quick]",
    )
    a = ap.parse_args(argv)
    a.groups_given = a.groups is not None
    if a.groups is None:
        a.groups = "http,burst"
    a.groups = [] if a.groups in ("", "none") else [g for g in a.groups.split(",") if g]
    bad = [g for g in a.groups if g not in KNOWN_GROUPS]
    if bad:
        ap.error("unknown group(s) {}; known: {}".format(bad, ",".join(KNOWN_GROUPS)))
    a.reps = a.reps or (1 if a.quick else 2)
    a.duration = a.duration or (2 if a.quick else 5)
    a.burst_reps = a.burst_reps or (1 if a.quick else 3)
    a.dash_seconds = max(2, min(a.dash_seconds or (5 if a.quick else 20), 60))
    a.fp_seconds = max(2.0, min(a.fp_seconds or (10.0 if a.quick else 60.0), 600.0))
    if a.cpu_quota is not None and not 0.01 <= a.cpu_quota <= 2.0:
        ap.error("--cpu-quota must be between 0.01 and 2 (cores)")
    if a.cpu_quota and not {"http", "footprint"} & set(a.groups) and not a.report_only:
        ap.error("--cpu-quota applies to the groups http and footprint; neither is selected")
    a.burst_clients = max(1, min(a.burst_clients, 5000))
    a.soak_seconds = max(10, min(a.soak_seconds, 6 * 3600))
    a.shared = os.path.abspath(a.shared)
    a.results = os.path.abspath(a.results)
    a.logdir = os.path.join(a.results, "logs")
    a.www = os.path.join(a.shared, "www")
    if not a.groups and not a.memory and not a.report_only:
        ap.error("nothing to do: no groups and no --memory")
    return a


def main():
    argv = sys.argv[1:]
    a = parse_args(argv)
    bpy = os.path.join(a.bench_venv, "bin", "python")
    if not os.environ.get(REEXEC_ENV) and not a.report_only:
        if not os.path.exists(os.path.join(a.shared, "setup.sh")):
            sys.exit(f"no shared harness at {a.shared} (use --shared DIR)")
        log(f"$ sh {a.shared}/setup.sh")
        r = run(
            ["sh", os.path.join(a.shared, "setup.sh")],
            1200,
            env=dict(os.environ, BENCH_VENV=a.bench_venv),
        )
        if r.returncode != 0:
            sys.exit("setup.sh failed:\n" + (r.stderr or r.stdout)[-2000:])
        # continue under the benchmark venv (psutil), setup already done
        os.execve(
            bpy, [bpy, os.path.abspath(__file__), *argv], dict(os.environ, **{REEXEC_ENV: "1"})
        )

    os.makedirs(a.logdir, exist_ok=True)
    raise_nofile()
    os.chdir(PROJECT)
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {1})  # keep the orchestrator off the server's core
    if a.report_only:
        with open(os.path.join(a.results, "ratios.json")) as f:
            old = json.load(f)
        started = datetime.datetime.fromisoformat(old["started"])
        if not a.groups_given and old.get("groups"):
            a.groups = old["groups"]
        rows = report(a, old["commit"], started, old.get("extra") or {}, old.get("memory"))
        return 1 if any(r.result == "MISS" for r in rows) else 0
    started = datetime.datetime.now().astimezone()
    commit = git_commit()
    log(f"commit {commit}, results in {a.results}")
    if a.cpu_quota:
        from cpu_quota import CpuQuota

        try:
            CpuQuota(a.cpu_quota, "preflight").create().remove()
        except (OSError, RuntimeError) as e:
            sys.exit(f"--cpu-quota: cannot make a cgroup: {e}")
    py = ensure_project_python(a)
    extra, mem = {}, None
    contention = {}
    if shared_groups(a):
        inter = interleaved_groups(a)
        rest = [g for g in shared_groups(a) if g not in inter]
        if a.no_peers:
            log(f"--no-peers: using the peer JSON already in {a.results}")
        if rest:
            extra, contention["pistatsd"] = measured(
                a, "pistatsd", lambda: bench_pistatsd(a, py, bpy, groups=rest)
            )
            if not a.no_peers:
                for peer in peers_for(a):
                    _, contention[peer] = measured(
                        a, peer, lambda p=peer: bench_peer(a, bpy, p, rest)
                    )
        if inter:
            extra.update(interleaved(a, py, bpy, inter, contention, keep_base=bool(rest)))
        if a.cpu_quota and "http" in a.groups:
            extra["quota_http"], contention["pistatsd-quota"] = measured(
                a, "pistatsd-quota", lambda: bench_pistatsd_quota(a, py, bpy)
            )
    if any(g in OWN_GROUPS for g in a.groups):
        import footprint_group
        import groups

        me = sys.modules[__name__]
        phases = {
            "influx": lambda: groups.influx_phase(a, me, py),
            "tls": lambda: groups.tls_phase(a, me, py, bpy),
            "dashboards": lambda: groups.dashboards_phase(a, me, py, bpy),
            "footprint": lambda: footprint_group.footprint_phase(a, me, py),
        }
        for g in OWN_GROUPS:
            if g in a.groups:
                extra[g], contention[g] = measured(a, g, lambda f=phases[g]: groups.phase_error(f))
    if a.groups:
        extra["contention"] = contention
    if a.memory:
        wait_quiet(a.wait_quiet, a.quiet_threshold)
        with ForeignCpu() as mon:
            mem = memory_phase(a, py)
        mem["foreign_cpu"] = mon.summary()
    rows = report(a, commit, started, extra, mem)
    log("wrote {}".format(os.path.join(a.results, "ratios.md")))
    return 1 if any(r.result == "MISS" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
