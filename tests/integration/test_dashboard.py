"""The dashboard and the WebSocket test page in a real headless Chromium.

The browser is driven over the Chrome DevTools Protocol (L{tests.cdp}) against
the real daemon (L{tests.daemon.Daemon}).  Every request the pages make is
recorded, so "no request leaves the machine" is checked, not assumed.
Screenshots land in C{test-artifacts/} at the project root (gitignored) for a
human to look at.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Awaitable
from typing import Any

import pytest

from tests.cdp import Page, launch
from tests.daemon import PROJECT, Daemon
from tests.real import require_program

pytestmark = pytest.mark.real

WWW = os.path.join(PROJECT, "www")
ARTIFACTS = os.path.join(PROJECT, "test-artifacts")
FETCH_ASSETS = os.path.join(PROJECT, "tools", "fetch-assets.sh")
FAST = ["--broadcast-interval", "0.2", "--sample-interval", "0.2"]

#: The page's own description of itself, for failure messages.
STATS = "window.pistatsd && window.pistatsd.stats()"
#: What the page shows for "no value".
DASH = "\u2013"


def stats_when(condition: str) -> str:
    """JS: the page's stats when C{condition} (about C{s}, the stats) holds, else null."""
    return f"(() => {{ const s = {STATS}; return s && ({condition}) ? s : null; }})()"


async def text_of(page: Page, element_id: str) -> str:
    return await page.evaluate(f"document.getElementById({json.dumps(element_id)}).textContent")


def run(coro: Awaitable[Any], timeout: float = 120) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_program("chromium")


@pytest.fixture(scope="module")
def assets() -> None:
    """uPlot in C{www/vendor/uplot}: the fetch script is idempotent (and verifies sums)."""
    try:
        result = subprocess.run(
            ["sh", FETCH_ASSETS], capture_output=True, text=True, timeout=300, cwd=PROJECT
        )
    except subprocess.TimeoutExpired:
        pytest.fail("sh tools/fetch-assets.sh took over 300 s; run it by hand", pytrace=False)
    if result.returncode != 0:
        pytest.fail(
            "the charting library is missing and tools/fetch-assets.sh failed; "
            "run `sh tools/fetch-assets.sh` (it needs the npm registry once, or "
            "PISTATSD_UPLOT_TARBALL):\n" + result.stdout + result.stderr,
            pytrace=False,
        )


async def start(args: list[str], **kwargs: Any) -> Daemon:
    return await asyncio.to_thread(Daemon(args, **kwargs).start)


async def stop(daemon: Daemon) -> None:
    status = await asyncio.to_thread(daemon.stop)
    assert status == 0, daemon.text()
    assert "Traceback" not in daemon.text()


@pytest.fixture(scope="module")
def server(assets):
    d = Daemon(["--www", WWW, *FAST]).start()
    yield d
    assert d.stop() == 0
    assert "Traceback" not in d.text()


async def wait_history(daemon: Daemon, count: int, timeout: float = 20.0) -> None:
    """Until the daemon's ring buffer holds C{count} snapshots (no blind sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status, _, body = await asyncio.to_thread(daemon.get, "/stats/history")
        if status == 200 and len(json.loads(body)["snapshots"]) >= count:
            return
        assert loop.time() < deadline, f"history never reached {count} snapshots"
        await asyncio.sleep(0.1)


async def next_frames(page: Page) -> None:
    """Let layout, resize observers and the chart redraw run."""
    await page.evaluate(
        "new Promise(r => requestAnimationFrame("
        "() => requestAnimationFrame(() => setTimeout(r, 50))))"
    )


def foreign(page: Page, *origins: str) -> list[str]:
    """Requests that went anywhere but C{origins}."""
    return [url for url in page.requests if not url.startswith(tuple(o + "/" for o in origins))]


def exceptions(page: Page) -> list[str]:
    return [e for e in page.errors if e.startswith("exception")]


def png_summary(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the pixel data) of a PNG; fails if not one."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        if data[pos + 4 : pos + 8] == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def save(name: str, png: bytes) -> str:
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, name)
    with open(path, "wb") as f:
        f.write(png)
    return path


def check_screenshot(png: bytes, min_width: int) -> None:
    width, height, distinct = png_summary(png)
    assert width >= min_width and height >= 400, (width, height)
    assert len(png) > 15_000, len(png)  # a blank page compresses to almost nothing
    assert distinct > 100, distinct


LIVE_AND_GROWING = stats_when(
    "s.state === 'live' && s.backfill >= 5 && s.points > s.backfill && s.live >= 3"
)

SHOWN = """({
    host: document.getElementById("hostname").textContent,
    title: document.title,
    cpu: document.getElementById("cpu").textContent,
    memory: document.getElementById("memory").textContent,
    load: document.getElementById("load").textContent,
    uptime: document.getElementById("uptime").textContent,
    conn: document.getElementById("conn").dataset.state,
    connText: document.getElementById("conn-text").textContent,
    canvases: document.querySelectorAll("#charts canvas").length,
    missingShown: !document.getElementById("charts-missing").hidden,
    overflow: document.documentElement.scrollWidth - window.innerWidth,
})"""


def test_dashboard_backfills_goes_live_and_stays_local(server, chromium):
    """A fresh page shows history at once, then grows live; every request stays on the daemon."""
    origin = f"http://127.0.0.1:{server.port}"

    async def go():
        await wait_history(server, 10)  # about 2 s of history at 0.2 s
        _, _, body = await asyncio.to_thread(server.get, "/stats")
        hostname = json.loads(body)["hostname"]
        async with launch(chromium) as browser:
            page = await browser.new_page()
            await page.viewport(1280, 900)
            await page.color_scheme("light")
            await page.navigate(origin + "/")
            stats = await page.wait_for(LIVE_AND_GROWING, timeout=30, describe=STATS)
            assert stats["charts"] is True and stats["transport"] == "WebSocket"
            assert stats["url"] == f"ws://127.0.0.1:{server.port}/ws/broadcast"
            # Bounded: 10 minutes at the hello's interval.
            assert stats["interval"] == 0.2 and stats["capacity"] == 3001
            await next_frames(page)
            shown = await page.evaluate(SHOWN)
            assert shown["host"] == hostname and hostname in shown["title"]
            assert re.fullmatch(r"\d+\.\d %|warming up", shown["cpu"]), shown
            assert re.fullmatch(r"\d+\.\d %", shown["memory"]), shown
            assert re.fullmatch(r"\d+\.\d\d", shown["load"]), shown
            assert re.fullmatch(r"\d+ (s|min)|\d+ h \d+ min|\d+ d \d+ h", shown["uptime"]), shown
            assert shown["conn"] == "live" and shown["connText"] == "live"
            assert shown["canvases"] == 5 and not shown["missingShown"]
            assert shown["overflow"] <= 0, "the page scrolls sideways"
            desktop = await page.screenshot()
            save("dashboard.png", desktop)
            check_screenshot(desktop, 1280)

            # A phone: one column of charts, no sideways scrolling.
            await page.viewport(390, 844, scale=2, mobile=True)
            await next_frames(page)
            phone = await page.evaluate(SHOWN)
            assert phone["overflow"] <= 0, "the phone layout scrolls sideways"
            widths = await page.evaluate(
                "[...document.querySelectorAll('#charts canvas')]"
                ".map(c => c.getBoundingClientRect().width)"
            )
            assert all(0 < w <= 390 for w in widths), widths
            save("dashboard-phone.png", await page.screenshot())

            # Dark mode: the page follows prefers-color-scheme.
            await page.viewport(1280, 900)
            await page.color_scheme("dark")
            await next_frames(page)
            background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
            red, green, blue = map(int, re.findall(r"\d+", background)[:3])
            assert red + green + blue < 150, background
            save("dashboard-dark.png", await page.screenshot())

            assert not foreign(page, origin, f"ws://127.0.0.1:{server.port}"), page.requests
            assert f"ws://127.0.0.1:{server.port}/ws/broadcast" in page.websockets
            assert f"{origin}/vendor/uplot/uPlot.iife.min.js" in page.requests
            assert page.errors == []

    run(go())


def test_dashboard_cards_filled_before_the_first_tick(chromium, assets):
    """The hello's latest snapshot fills every card at once, uptime and disk included.

    With a 30 s broadcast interval the first tick comes 30 s after the page
    connects: everything checked here is shown long before it.
    """

    async def go():
        daemon = await start(
            ["--www", WWW, "--broadcast-interval", "30", "--sample-interval", "0.2"]
        )
        try:
            await wait_history(daemon, 3)  # past the warm-up sample: CPU has a value
            async with launch(chromium) as browser:
                page = await browser.new_page()
                await page.navigate(f"http://127.0.0.1:{daemon.port}/")
                stats = await page.wait_for(
                    stats_when("s.state === 'live' && s.greeted"), timeout=20, describe=STATS
                )
                cards = await page.evaluate(
                    """Object.fromEntries(["cpu", "memory", "load", "uptime", "uptime-detail",
                        "disk", "disk-detail", "temperature"].map(
                        id => [id, document.getElementById(id).textContent]))"""
                )
                after = await page.evaluate(STATS)
        finally:
            await stop(daemon)
        # Still no tick: what is shown came with the hello.
        assert stats["live"] == 0 and after["live"] == 0, (stats, after)
        assert stats["interval"] == 30 and after["reconnects"] == 0, after
        # A silent socket is given up after five intervals, not after the 15 s
        # meant for fast broadcasts, or it would never see its first tick.
        assert stats["silenceLimit"] == 150, stats
        assert re.fullmatch(r"\d+ (s|min)|\d+ h \d+ min|\d+ d \d+ h", cards["uptime"]), cards
        assert cards["uptime-detail"].startswith("booted "), cards
        assert re.fullmatch(r"\d+\.\d %", cards["disk"]), cards
        assert " free on " in cards["disk-detail"], cards
        assert re.fullmatch(r"\d+\.\d %", cards["cpu"]), cards
        assert re.fullmatch(r"\d+\.\d %", cards["memory"]), cards
        assert re.fullmatch(r"\d+\.\d\d", cards["load"]), cards
        assert DASH not in cards["temperature"], cards

    run(go())


def test_dashboard_shows_throttling_and_sensors_when_present(server, chromium):
    """Sections for Raspberry Pi throttling flags and sensors appear only with data."""
    origin = f"http://127.0.0.1:{server.port}"
    snapshot = {
        "timestamp": 1.0,
        "hostname": "pi",
        "throttled": {
            "raw": 0x50005,
            "now": {
                "under_voltage": True,
                "freq_capped": False,
                "throttled": True,
                "soft_temp_limit": False,
            },
            "since_boot": {
                "under_voltage": True,
                "freq_capped": True,
                "throttled": True,
                "soft_temp_limit": False,
            },
        },
        "sensors": {
            "room": {"value": 21.456, "unit": "C", "error": None},
            "broken": {"value": None, "unit": "C", "error": "cannot read"},
        },
    }

    async def go():
        async with launch(chromium) as browser:
            page = await browser.new_page()
            await page.navigate(origin + "/")
            await page.wait_for(stats_when("s.state === 'live'"), describe=STATS)
            assert await page.evaluate(
                "document.getElementById('throttle').hidden"
                " && document.getElementById('sensors').hidden"
            ), "no throttling or sensor data here: both sections hidden"
            # Render and read in one synchronous step: the next tick would hide them again.
            shown = await page.evaluate(
                f"""(() => {{
                    pistatsd.render({json.dumps(snapshot)});
                    const rows = id => [...document.querySelectorAll(id + ' tbody tr')]
                        .map(tr => [...tr.children].map(c => c.textContent.trim()));
                    return {{
                        throttleShown: !document.getElementById('throttle').hidden,
                        sensorsShown: !document.getElementById('sensors').hidden,
                        flags: rows('#throttle'),
                        raw: document.getElementById('throttle-raw').textContent,
                        sensors: rows('#sensors'),
                    }};
                }})()"""
            )
            assert shown["throttleShown"] and shown["sensorsShown"]
            assert shown["flags"] == [  # no change times in this snapshot: a dash
                ["Under-voltage", "yes", "yes", DASH],
                ["Frequency capped", "no", "yes", DASH],
                ["Throttled", "yes", "yes", DASH],
                ["Soft temperature limit", "no", "no", DASH],
            ]
            assert shown["raw"] == "raw value 0x50005"
            assert shown["sensors"] == [["broken", DASH, "cannot read"], ["room", "21.456 C", "ok"]]
            assert exceptions(page) == []

    run(go())


#: Reads every machine section of the page as text, in one synchronous step.
MACHINE_SHOWN = """(() => {
    const rows = id => [...document.querySelectorAll(id + ' tbody tr')]
        .map(tr => [...tr.children].map(c => c.textContent.trim()));
    const shown = id => !document.getElementById(id).hidden;
    return {
        filesystems: shown('filesystems') && rows('#filesystems'),
        levels: [...document.querySelectorAll('#fs-rows .meter')].map(m => m.dataset.level),
        errors: [...document.querySelectorAll('#fs-rows tr')].map(tr => tr.dataset.error || ''),
        disks: shown('disks') && rows('#disks'),
        interfaces: shown('interfaces') && rows('#interfaces'),
        topCpu: shown('processes') && rows('#top-cpu'),
        topMemory: shown('processes') && rows('#top-memory'),
        counts: document.getElementById('process-counts').textContent,
        fans: shown('fans') && rows('#fans'),
        power: shown('throttle') && document.getElementById('power-state').textContent,
        volts: document.getElementById('power-volts').textContent,
        flags: rows('#throttle'),
        cpuDetail: document.getElementById('cpu-detail').textContent,
        scripts: document.querySelectorAll('main script, main img').length,
        overflow: document.documentElement.scrollWidth - window.innerWidth,
    };
})()"""


def test_dashboard_renders_the_whole_machine(server, chromium):
    """Real data: the network and disk charts, and the sections the daemon's /stats has;
    a fixture Pi: every section, exactly, with names shown as text only."""
    from tests.machine_snapshots import PI, first_sample

    origin = f"http://127.0.0.1:{server.port}"

    async def go():
        _, _, body = await asyncio.to_thread(server.get, "/stats")
        real = json.loads(body)
        async with launch(chromium) as browser:
            page = await browser.new_page()
            await page.viewport(1280, 900)
            await page.navigate(origin + "/")
            await page.wait_for(stats_when("s.state === 'live' && s.live >= 2"), describe=STATS)
            await next_frames(page)
            canvases = await page.evaluate(
                "['net', 'diskio'].map(k => document.querySelectorAll("
                "`.chart[data-metric=${k}] canvas`).length)"
            )
            assert canvases == [1, 1]
            shown = await page.evaluate(MACHINE_SHOWN)
            # What this daemon collects is shown; what it does not is hidden.
            if real.get("filesystems"):
                mounts = [row[0].split(" ")[0] for row in shown["filesystems"]]
                assert "/" in mounts, shown["filesystems"]
            else:
                assert shown["filesystems"] is False
            if real.get("processes") and real["processes"].get("top_cpu"):
                assert shown["topCpu"], shown
            assert shown["power"] is False or "throttled" in real

            fixture = await page.evaluate(f"(pistatsd.render({json.dumps(PI)}), {MACHINE_SHOWN})")
            first = await page.evaluate(
                f"(pistatsd.render({json.dumps(first_sample())}), {MACHINE_SHOWN})"
            )
            assert exceptions(page) == []
        return fixture, first

    shown, first = run(go())
    assert shown["filesystems"] == [
        ["/", "93.1 %", "2.0 GiB", "29.0 GiB"],
        ["/boot/firmware read-only", "12.5 %", "448 MiB", "512 MiB"],
        ["/media/My Photos", "40.0 %", "600 GiB", "1000 GiB"],
        ["/mnt/nas", "timeout"],
    ]
    assert shown["levels"] == ["bad", "ok", "ok"], "warning colour from 90 %"
    assert shown["errors"] == ["", "", "", "timeout"]
    assert shown["disks"] == [
        ["mmcblk0 wear 20 %", "4.0 KiB/s", "2.5 MiB/s", "7.5 %", "49.0 GiB"],
        ["sda", "0 B/s", "0 B/s", "0.0 %", "1.0 MiB"],
    ]
    assert shown["interfaces"] == [
        ['br-"lan\\1 virtual', "down", DASH, DASH, DASH],
        ["eth0", "up", "1.5 MiB/s", "19.5 KiB/s", "1 Gb/s"],
        ["wlan0", "up", "0 B/s", "480 B/s", "Wi-Fi -55 dBm · 71 %"],
    ]
    assert shown["topCpu"][:2] == [
        ["python3 812", "35.2 %", "88.0 MiB"],
        ["<script>x</script> 990", "4.1 %", "12.0 MiB"],
    ]
    assert shown["topMemory"][1] == ["influxd 700", "60.0 MiB", "0.0 %"]
    assert shown["scripts"] == 0, "a process name became markup"
    assert shown["counts"] == "182 in all · 2 running · 1 zombie"
    assert shown["fans"] == [["pwmfan/fan1", "3121 rpm"]]
    assert shown["power"] == "Under-voltage now: check the power supply"
    assert shown["volts"] == "Core 0.86 V · Input 4.87 V"
    assert shown["flags"][0][:3] == ["Under-voltage", "yes", "yes"]
    assert shown["flags"][3][3] == DASH, "soft temperature limit never changed"
    assert shown["cpuDetail"].startswith("4 cores · 1800 MHz: "), shown["cpuDetail"]
    assert first["topCpu"] == [["measuring…"]], "no CPU window yet: said, not an empty table"
    assert first["topMemory"][0] == ["python3 812", "88.0 MiB", DASH]


#: Before the page's scripts: a WebSocket that greets with a minute of the
#: fixture Pi (rates varying) and ticks every second, so screenshots show
#: every section and chart filled, whatever this machine has.
FIXTURE_SOCKET = """
window.WebSocket = function (url) {
  const fixture = window.__fixture;
  const base = Date.now() / 1000 - 60;
  const snap = (i) => {
    const s = JSON.parse(JSON.stringify(fixture));
    s.timestamp = base + i;
    s.net.rx_bytes_per_s = 1.5e6 * (1.2 + Math.sin(i / 6));
    s.net.tx_bytes_per_s = 2e5 * (1.1 + Math.cos(i / 4));
    s.disk_io.mmcblk0.write_bytes_per_s = 2.5e6 * (1 + Math.sin(i / 9));
    s.disk_io.mmcblk0.read_bytes_per_s = 4e5 * (1 + Math.cos(i / 7));
    return s;
  };
  const sock = { readyState: 1, send() {}, close() { clearInterval(timer); } };
  let n = 60;
  setTimeout(() => {
    const history = [];
    for (let i = 0; i < 60; i++) history.push(snap(i));
    const hello = { type: "hello", interval: 1, history, latest: snap(60) };
    sock.onmessage({ data: JSON.stringify(hello) });
  }, 20);
  const timer = setInterval(() => {
    n++;
    sock.onmessage({ data: JSON.stringify({ type: "stats", sent: base + n, ...snap(n) }) });
  }, 1000);
  return sock;
};
"""


def test_dashboard_screenshots_of_the_whole_machine(server, chromium):
    """The fixture Pi at desktop and phone width: no sideways scrolling, charts drawn."""
    from tests.machine_snapshots import PI

    origin = f"http://127.0.0.1:{server.port}"

    async def go():
        async with launch(chromium) as browser:
            page = await browser.new_page(
                before_load=f"window.__fixture = {json.dumps(PI)};" + FIXTURE_SOCKET
            )
            await page.viewport(1280, 900)
            await page.color_scheme("light")
            await page.navigate(origin + "/")
            await page.wait_for(stats_when("s.state === 'live' && s.live >= 1"), describe=STATS)
            await next_frames(page)
            readout = await text_of(page, "readout-net")
            assert readout.startswith("received ") and " · sent " in readout, readout
            desktop = await page.screenshot()
            save("dashboard-machine.png", desktop)
            check_screenshot(desktop, 1280)
            assert (await page.evaluate(MACHINE_SHOWN))["overflow"] <= 0

            await page.viewport(390, 844, scale=2, mobile=True)
            await next_frames(page)
            shown = await page.evaluate(MACHINE_SHOWN)
            assert shown["overflow"] <= 0, "the phone layout scrolls sideways"
            widths = await page.evaluate(
                "[...document.querySelectorAll('.panels .panel, #throttle')]"
                ".map(p => p.getBoundingClientRect().right)"
            )
            assert all(0 < right <= 390 for right in widths), widths
            save("dashboard-machine-phone.png", await page.screenshot())
            await page.color_scheme("dark")
            await page.viewport(1280, 900)
            await next_frames(page)
            save("dashboard-machine-dark.png", await page.screenshot())
            assert exceptions(page) == []

    run(go())


def test_dashboard_without_charting_library(chromium, tmp_path):
    """No uPlot: a clear message where the charts go, and the numbers still live."""
    www = tmp_path / "www"
    shutil.copytree(WWW, www, ignore=shutil.ignore_patterns("vendor"))

    async def go():
        daemon = await start(["--www", str(www), *FAST])
        try:
            origin = f"http://127.0.0.1:{daemon.port}"
            async with launch(chromium) as browser:
                page = await browser.new_page()
                await page.viewport(1000, 800)
                await page.navigate(origin + "/")
                await page.wait_for(
                    "pistatsd.stats().state === 'live' && pistatsd.stats().live >= 2"
                    " && document.getElementById('memory').textContent.endsWith('%')",
                    describe=STATS,
                )
                shown = await page.evaluate(SHOWN)
                message = await page.evaluate("document.getElementById('charts-missing').innerText")
                charts_hidden = await page.evaluate("document.getElementById('charts').hidden")
                assert shown["missingShown"] and charts_hidden and shown["canvases"] == 0
                assert "charting library not installed" in message.lower()
                assert "sh tools/fetch-assets.sh" in message
                assert shown["host"] != "pistatsd" and shown["load"] != DASH
                assert (await page.evaluate(STATS))["charts"] is False
                png = await page.screenshot()
                save("dashboard-no-uplot.png", png)
                png_summary(png)
                assert exceptions(page) == []
                assert not foreign(page, origin, f"ws://127.0.0.1:{daemon.port}"), page.requests
        finally:
            await stop(daemon)

    run(go())


def test_dashboard_polls_when_websockets_are_unavailable(server, chromium):
    """No C{WebSocket} in the browser: backfill from /stats/history, then poll /stats."""
    origin = f"http://127.0.0.1:{server.port}"

    async def go():
        await wait_history(server, 10)
        async with launch(chromium) as browser:
            page = await browser.new_page(before_load="delete window.WebSocket;")
            await page.navigate(origin + "/")
            stats = await page.wait_for(
                stats_when("s.state === 'polling' && s.backfill >= 5 && s.live >= 3"),
                timeout=30,
                describe=STATS,
            )
            assert stats["transport"] == "polling"
            assert await text_of(page, "conn-text") == "polling"
            assert page.websockets == []
            assert f"{origin}/stats" in page.requests
            assert any(url.startswith(f"{origin}/stats/history") for url in page.requests)
            assert not foreign(page, origin), page.requests
            assert page.errors == []

    run(go())


#: Before the page's scripts: a WebSocket whose connections all fail until the
#: test sets C{window.__allowWS}, counting attempts in C{window.__wsAttempts}.
FAILING_WEBSOCKET = """
window.__wsAttempts = 0;
window.__allowWS = false;
const RealWebSocket = window.WebSocket;
window.WebSocket = function (url) {
  window.__wsAttempts++;
  if (window.__allowWS) return new RealWebSocket(url);
  const fake = { readyState: 3, send() {}, close() {} };
  setTimeout(() => fake.onclose && fake.onclose({ code: 1006 }), 10);
  return fake;
};
"""


def test_dashboard_falls_back_to_polling_and_back(server, chromium):
    """Several failed connects: poll /stats, keep retrying the WebSocket, go live when it works."""
    origin = f"http://127.0.0.1:{server.port}"

    async def go():
        async with launch(chromium) as browser:
            page = await browser.new_page(before_load=FAILING_WEBSOCKET)
            await page.navigate(origin + "/")
            await page.wait_for(
                stats_when("s.state === 'polling' && s.live >= 2 && s.reconnects >= 3"),
                timeout=30,
                describe=STATS,
            )
            text = await text_of(page, "conn-text")
            assert re.fullmatch(r"polling · WebSocket retry in \d+ s", text), text
            # Let the next attempt through, counting the failed ones in the same step.
            failed = await page.evaluate("window.__allowWS = true, window.__wsAttempts")
            assert failed >= 3
            stats = await page.wait_for(
                stats_when("s.state === 'live' && s.transport === 'WebSocket'"),
                timeout=30,
                describe=STATS,
            )
            assert await page.evaluate("window.__wsAttempts") == failed + 1
            # Polling has stopped: no /stats request from now on.
            polled = page.requests.count(f"{origin}/stats")
            await page.wait_for(stats_when(f"s.live > {stats['live']} + 3"), describe=STATS)
            assert page.requests.count(f"{origin}/stats") == polled
            assert not foreign(page, origin, f"ws://127.0.0.1:{server.port}"), page.requests
            assert page.errors == []

    run(go())


def test_dashboard_reconnects_with_backoff(chromium, assets):
    """The daemon goes away: "reconnecting in N s"; it comes back: live again, more points."""

    async def go():
        daemon = await start(["--www", WWW, *FAST])
        port = daemon.port
        try:
            async with launch(chromium) as browser:
                page = await browser.new_page()
                await page.navigate(f"http://127.0.0.1:{port}/")
                await page.wait_for(stats_when("s.state === 'live'"), describe=STATS)
                await stop(daemon)
                text = await page.wait_for(
                    "pistatsd.stats().state === 'reconnecting'"
                    " && document.getElementById('conn-text').textContent",
                    describe=STATS,
                )
                assert re.fullmatch(r"reconnecting in \d+ s", text), text
                daemon = await start(["--www", WWW, *FAST], port=port)
                before = (await page.evaluate(STATS))["live"]
                stats = await page.wait_for(
                    stats_when(f"s.state === 'live' && s.live > {before} + 2"),
                    timeout=45,
                    describe=STATS,
                )
                assert stats["reconnects"] >= 1
                assert exceptions(page) == []
        finally:
            if daemon.proc is not None and daemon.proc.poll() is None:
                await stop(daemon)

    run(go())


def test_dashboard_over_https_uses_wss(chromium, assets, tmp_path):
    """Loaded over HTTPS (self-signed certificate), the page talks C{wss://} to the same origin."""

    async def go():
        daemon = await start(
            [
                "--www",
                WWW,
                *FAST,
                "--tls",
                "ssl:0:interface=127.0.0.1",
                "--state-dir",
                str(tmp_path / "state"),
            ]
        )
        tls_port = daemon.bound_port("tls")
        try:
            origin = f"https://127.0.0.1:{tls_port}"
            async with launch(chromium, ["--ignore-certificate-errors"]) as browser:
                page = await browser.new_page()
                await page.navigate(origin + "/")
                stats = await page.wait_for(
                    stats_when("s.state === 'live' && s.live >= 2"), describe=STATS
                )
                assert stats["url"] == f"wss://127.0.0.1:{tls_port}/ws/broadcast"
                assert page.websockets == [f"wss://127.0.0.1:{tls_port}/ws/broadcast"]
                assert not foreign(page, origin, f"wss://127.0.0.1:{tls_port}"), page.requests
                assert page.errors == []
        finally:
            await stop(daemon)

    run(go())


def test_ws_test_page_echo_and_broadcast(server, chromium):
    """Type, send, see the echo (text and binary); start and stop the raw broadcast view."""
    origin = f"http://127.0.0.1:{server.port}"
    text = "héllo from the test ✓"

    async def go():
        async with launch(chromium) as browser:
            page = await browser.new_page()
            await page.viewport(1100, 800)
            await page.navigate(origin + "/ws-test.html")
            await page.wait_for("document.getElementById('echo-status').dataset.state === 'open'")
            await page.evaluate(
                f"document.getElementById('echo-text').value = {json.dumps(text)};"
                "document.getElementById('echo-send').click()"
            )
            received = (
                "[...document.querySelectorAll('#echo-log li.recv .payload')]"
                ".map(p => p.textContent)"
            )
            await page.wait_for(f"{received}.includes({json.dumps(text)})")
            await page.evaluate(
                "document.getElementById('echo-binary').checked = true;"
                "document.getElementById('echo-text').value = 'bin';"
                "document.getElementById('echo-send').click()"
            )
            await page.wait_for(f"{received}.some(t => t.startsWith('[3 bytes] 62 69 6e'))")

            count = "+document.getElementById('bc-count').textContent"
            assert await page.evaluate(count) == 0
            await page.evaluate("document.getElementById('bc-toggle').click()")
            await page.wait_for(f"{count} >= 3")
            kinds = await page.evaluate(
                "[...document.querySelectorAll('#bc-log li.recv .kind')].map(k => k.textContent)"
            )
            assert kinds[-1] == "hello" and "stats" in kinds, kinds
            await page.evaluate("document.getElementById('bc-toggle').click()")
            await page.wait_for("document.getElementById('bc-status').dataset.state === 'closed'")
            stopped_at = await page.evaluate(count)
            await page.evaluate("new Promise(r => setTimeout(r, 600))")  # three ticks
            assert await page.evaluate(count) == stopped_at
            assert await text_of(page, "bc-toggle") == "Start"
            save("ws-test.png", await page.screenshot())

            assert page.websockets == [
                f"ws://127.0.0.1:{server.port}/ws/echo",
                f"ws://127.0.0.1:{server.port}/ws/broadcast",
            ]
            assert not foreign(page, origin, f"ws://127.0.0.1:{server.port}"), page.requests
            assert page.errors == []

    run(go())
