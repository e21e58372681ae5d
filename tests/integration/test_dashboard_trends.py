"""The dashboard's trends in a real headless Chromium: ranges, the URL, zoom, the live tail.

Same harness as L{tests.test_dashboard}: the real daemon, the browser over
the DevTools protocol, screenshots in C{test-artifacts/}.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.cdp import Page, launch
from tests.daemon import Daemon, fresh_state_dir
from tests.integration.test_dashboard import (
    FAST,
    WWW,
    check_screenshot,
    chromium,  # noqa: F401  (a fixture)
    next_frames,
    run,
    save,
    start,
    stop,
    wait_history,
)
from tests.integration.test_dashboard import assets as assets

pytestmark = pytest.mark.real

TRENDS = "window.pistatsdTrends && window.pistatsdTrends.stats()"


def trends_when(condition: str) -> str:
    """JS: the trends' stats when C{condition} (about C{s}) holds, else null."""
    return (
        f"(() => {{ const s = {TRENDS}; return s && !s.loading && ({condition}) ? s : null; }})()"
    )


def series_queries(page: Page) -> list[dict[str, list[str]]]:
    """The query arguments of every C{/stats/series?...} the page asked for."""
    return [
        parse_qs(urlsplit(url).query)
        for url in page.requests
        if urlsplit(url).path == "/stats/series" and urlsplit(url).query
    ]


@pytest.fixture(scope="module")
def server(assets):
    """Ring only: the daemon has just started, so with a store every range would begin
    before the ring and come back at the store's 10 s steps, leaving no finer data to
    zoom into (stored data is L{test_trends_show_stored_data_after_restart}'s part)."""
    d = Daemon(["--www", WWW, *FAST, "--history-db", "none"]).start()
    yield d
    assert d.stop() == 0
    assert "Traceback" not in d.text()


async def drag(page: Page, selector: str, start: float, end: float) -> None:
    """A real mouse drag across the element, from fraction C{start} to C{end} of its width.

    The element is scrolled into the viewport first: mouse events land where a
    person could point, and the page is taller than one screen.
    """
    box = await page.evaluate(
        f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
        " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
        " return [r.left, r.top, r.width, r.height]; })()"
    )
    left, top, width, height = box
    y = top + height / 2
    x0, x1 = left + width * start, left + width * end
    mouse = "Input.dispatchMouseEvent"
    await page.send(mouse, type="mouseMoved", x=x0, y=y)
    await page.send(mouse, type="mousePressed", x=x0, y=y, button="left", buttons=1, clickCount=1)
    for i in range(1, 11):
        x = x0 + (x1 - x0) * i / 10
        await page.send(mouse, type="mouseMoved", x=x, y=y, button="left", buttons=1)
    await page.send(mouse, type="mouseReleased", x=x1, y=y, button="left", buttons=0, clickCount=1)


async def double_click(page: Page, selector: str) -> None:
    box = await page.evaluate(
        f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
        ".getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()"
    )
    x, y = box
    for count in (1, 2):
        for kind in ("mousePressed", "mouseReleased"):
            await page.send(
                "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=count
            )


def test_trends_range_buttons_url_zoom_and_tail(server, chromium):  # noqa: F811
    """7 d sets #range=7d and asks for 7 days; a drag zooms with finer data; a
    double-click resets; the tail follows the broadcast; no errors, no sideways scroll."""
    origin = f"http://127.0.0.1:{server.port}"

    async def go() -> None:
        await wait_history(server, 50)  # 10 s at 0.2 s: enough to zoom into
        async with launch(chromium) as browser:
            page = await browser.new_page()
            await page.viewport(1280, 900)
            await page.color_scheme("light")
            await page.navigate(origin + "/")
            # The default: the last hour, from the ring, with the tail moving.
            first = await page.wait_for(
                trends_when("s.ready && s.fetches >= 1 && s.points > 0 && s.tailTicks >= 3"),
                describe=TRENDS,
            )
            assert first["range"] == "1h" and not first["zoomed"], first
            assert first["values"]["cpu.percent"] > 0, first
            assert first["values"]["memory.percent"] > 0, first
            assert first["error"] == "", first

            await page.evaluate(
                "document.querySelector('#trends-ranges [data-range=\"7d\"]').click()"
            )
            week = await page.wait_for(
                trends_when("s.range === '7d' && s.fetches >= 2 && s.step >= 600"),
                describe=TRENDS,
            )
            assert await page.evaluate("location.hash") == "#range=7d"
            pressed = await page.evaluate(
                "[...document.querySelectorAll('#trends-ranges button')]"
                ".filter(b => b.getAttribute('aria-pressed') === 'true').map(b => b.dataset.range)"
            )
            assert pressed == ["7d"]
            query = series_queries(page)[-1]
            now = time.time()
            assert abs(float(query["from"][0]) - (now - 7 * 86400)) < 60, query
            assert "to" not in query  # a range that ends now: the server's now
            assert query["names"][0].split(",")[:2] == ["cpu.percent", "memory.percent"]
            assert 60 <= int(query["points"][0]) <= 1000, query
            assert abs(week["to"] - week["from"] - 7 * 86400) < 1, week
            assert week["banded"] is True, week  # a point covers many samples

            # Back to 15 min, then drag across the right half of the CPU chart.
            await page.evaluate(
                "document.querySelector('#trends-ranges [data-range=\"15m\"]').click()"
            )
            short = await page.wait_for(
                trends_when("s.range === '15m' && s.fetches >= 3 && s.points > 0"), describe=TRENDS
            )
            await next_frames(page)
            # Across where the data is (the daemon started seconds ago) to the end.
            data = await page.evaluate("window.pistatsdTrends.data()")
            first_t = next(t for t, v in zip(data["t"], data["cpu"], strict=True) if v is not None)
            begin = max(0.0, (first_t - short["from"]) / (short["to"] - short["from"]) - 0.1)
            await drag(page, "#trend-cpu .u-over", begin, 0.999)
            zoomed = await page.wait_for(
                trends_when(f"s.zoomed && s.fetches >= {short['fetches'] + 1}"), describe=TRENDS
            )
            span = zoomed["to"] - zoomed["from"]
            assert 10 <= span <= 15 * 60 * (1 - begin) + 5, zoomed
            query = series_queries(page)[-1]
            assert "to" in query and float(query["to"][0]) - float(query["from"][0]) < 15 * 60
            assert not await page.evaluate("document.getElementById('trends-reset').hidden")
            await page.wait_for(
                trends_when(f"s.values['cpu.percent'] > 0 && s.step < {short['step']}"),
                describe=TRENDS,
            )

            ticks = (await page.evaluate(TRENDS))["tailTicks"]
            await asyncio.sleep(1)
            assert (await page.evaluate(TRENDS))["tailTicks"] == ticks  # zoomed: no tail

            await double_click(page, "#trend-cpu .u-over")
            back = await page.wait_for(
                trends_when("!s.zoomed && s.range === '15m'"), describe=TRENDS
            )
            assert abs(back["to"] - back["from"] - 900) < 1, back
            await page.wait_for(trends_when(f"s.tailTicks > {ticks}"), describe=TRENDS)

            shown = await page.evaluate(
                "({overflow: document.documentElement.scrollWidth - window.innerWidth,"
                " canvases: document.querySelectorAll('#trends-charts canvas').length,"
                " live: document.querySelectorAll('#charts canvas').length})"
            )
            assert shown == {"overflow": 0, "canvases": 4, "live": 5} or (
                shown["overflow"] <= 0 and shown["canvases"] == 4 and shown["live"] == 5
            ), shown
            await page.evaluate(
                "document.querySelector('#trends-ranges [data-range=\"24h\"]').click()"
            )
            await page.wait_for(trends_when("s.range === '24h' && s.points > 0"), describe=TRENDS)
            await next_frames(page)
            desktop = await page.screenshot()
            save("trends.png", desktop)
            check_screenshot(desktop, 1280)

            await page.viewport(390, 844, scale=2, mobile=True)
            await next_frames(page)
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, "the phone layout scrolls sideways"
            widths = await page.evaluate(
                "[...document.querySelectorAll('#trends-charts canvas')]"
                ".map(c => c.getBoundingClientRect().width)"
            )
            assert all(0 < w <= 390 for w in widths), widths
            save("trends-phone.png", await page.screenshot())

            # Dark mode: the charts are remade in the dark colours, still four of them.
            await page.viewport(1280, 900)
            await page.color_scheme("dark")
            await next_frames(page)
            canvases = await page.evaluate(
                "document.querySelectorAll('#trends-charts canvas').length"
            )
            assert canvases == 4, canvases
            save("trends-dark.png", await page.screenshot())
            assert page.errors == [], page.errors

    run(go())


def test_trends_range_from_url(server, chromium):  # noqa: F811
    """Loading the page with #range=24h selects 24 h; a bad range falls back to 1 h."""
    origin = f"http://127.0.0.1:{server.port}"

    async def go() -> None:
        async with launch(chromium) as browser:
            page = await browser.new_page()
            await page.navigate(origin + "/#range=24h")
            day = await page.wait_for(trends_when("s.fetches >= 1 && s.step > 0"), describe=TRENDS)
            assert day["range"] == "24h", day
            query = series_queries(page)[-1]
            assert abs(float(query["from"][0]) - (time.time() - 86400)) < 60, query
            assert (
                await page.evaluate(
                    "document.querySelector('#trends-ranges [data-range=\"24h\"]')"
                    ".getAttribute('aria-pressed')"
                )
                == "true"
            )

            # The back button (or an edited URL) changes the range too.
            await page.evaluate("location.hash = 'range=6h'")
            await page.wait_for(trends_when("s.range === '6h' && s.fetches >= 2"), describe=TRENDS)

            other = await browser.new_page()
            await other.navigate(origin + "/#range=bogus")
            fallback = await other.wait_for(trends_when("s.fetches >= 1"), describe=TRENDS)
            assert fallback["range"] == "1h", fallback
            assert page.errors == [] and other.errors == []

    run(go())


STORE = importlib.util.find_spec("pistatsd.history.store") is not None


@pytest.mark.skipif(not STORE, reason="needs the history store (pistatsd.history.store)")
def test_trends_show_stored_data_after_restart(chromium, assets):  # noqa: F811
    """Data recorded before a restart is on the chart after it (from the store)."""

    async def go() -> None:
        state = fresh_state_dir()
        args = ["--www", WWW, *FAST, "--state-dir", state]
        first = await start(args)
        await wait_history(first, 20)
        await stop(first)  # a clean stop writes what the store holds
        stopped = time.time()
        second = await start(args)
        try:
            origin = f"http://127.0.0.1:{second.port}"
            async with launch(chromium) as browser:
                page = await browser.new_page()
                await page.navigate(origin + "/#range=15m")
                await page.wait_for(trends_when("s.fetches >= 1 && s.points > 0"), describe=TRENDS)
                data = await page.evaluate("window.pistatsdTrends.data()")
                pairs = zip(data["t"], data["cpu"], strict=True)
                before: Any = [t for t, v in pairs if t < stopped - 1 and v is not None]
                assert before, "nothing from before the restart on the chart"
                assert page.errors == [], page.errors
        finally:
            await stop(second)

    run(go())


BUSY_ONCE = """
(() => {
  const real = window.fetch.bind(window);
  let refused = 0;
  window.fetch = (url, options) => {
    if (refused === 0 && String(url).includes("/stats/series?")) {
      refused++;
      const body = JSON.stringify({ error: "busy: too many history queries waiting" });
      return Promise.resolve(new Response(body, {
        status: 503, headers: { "Content-Type": "application/json", "Retry-After": "0" },
      }));
    }
    return real(url, options);
  };
})();
"""


def test_trends_wait_out_a_busy_history(server, chromium):  # noqa: F811
    """A 503 with Retry-After (the history's query cap) is asked again, not shown as an error."""
    origin = f"http://127.0.0.1:{server.port}"

    async def go() -> None:
        async with launch(chromium) as browser:
            page = await browser.new_page(before_load=BUSY_ONCE)
            await page.navigate(origin + "/#range=1h")
            done = await page.wait_for(
                trends_when("s.retries === 1 && s.points > 0"), describe=TRENDS
            )
            assert done["error"] == "", done
            assert done["fetches"] == 2, done  # the refused query and the one after it
            assert len(series_queries(page)) == 1  # only the second reached the daemon
            assert page.errors == []

    run(go())
